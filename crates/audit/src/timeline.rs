//! The custody timeline of a case: every event the merged replay saw, with
//! the custodian after it and the basis it relied on; the consents' periods
//! and the accepted handovers, for the table and the SVG picture.

use std::io::Write;

use serde::Serialize;
use waymark_policy::CaseState;
use waymark_types::Timestamp;

use crate::finding::Severity;

/// One event of a case, in merged (journal-time) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// When it happened (`occurred_at`), ms since the Unix epoch.
    pub at: i64,
    /// The signing agency.
    pub agency: String,
    /// The agency it was sent to, if any.
    pub recipient: Option<String>,
    /// Event kind token, e.g. `handover_accepted`.
    pub event: String,
    /// Event id.
    pub event_id: String,
    /// The custodian after the event, in the auditor's view.
    pub custodian_after: Option<String>,
    /// The basis the event relied on (`consent <id>`, `legal: <basis>`, `-`).
    pub basis: String,
    /// The journal where the replay first met it.
    pub journal: String,
    /// Its entry seq there.
    pub seq: u64,
    /// The worst finding about this event (rule id, severity), if any.
    pub finding: Option<(String, Severity)>,
}

/// A consent's period of validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentPeriod {
    /// The consent (its grant's event id).
    pub consent_id: String,
    /// The agency that recorded it.
    pub recorded_by: String,
    /// First instant in force (ms).
    pub from: i64,
    /// End of validity (ms), if any.
    pub until: Option<i64>,
    /// When a withdrawal took effect (ms), if withdrawn.
    pub withdrawn_at: Option<i64>,
}

/// One accepted handover: custody moved `from` → `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handover {
    /// When (ms).
    pub at: i64,
    /// The previous custodian.
    pub from: String,
    /// The new custodian.
    pub to: String,
    /// The accepting event.
    pub event_id: String,
}

/// The timeline of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseTimeline {
    /// The case.
    pub case_id: String,
    /// Events in merged order.
    pub rows: Vec<Row>,
    /// Consent periods.
    pub consents: Vec<ConsentPeriod>,
    /// Accepted handovers, oldest first.
    pub handovers: Vec<Handover>,
    /// The custodian at the end.
    pub custodian: Option<String>,
}

impl CaseTimeline {
    pub(crate) fn new(case_id: String) -> Self {
        Self {
            case_id,
            rows: Vec::new(),
            consents: Vec::new(),
            handovers: Vec::new(),
            custodian: None,
        }
    }

    pub(crate) fn fill_from_state(&mut self, s: &CaseState) {
        self.custodian = s.custodian().map(ToString::to_string);
        self.consents = s
            .consents()
            .iter()
            .map(|(id, c)| ConsentPeriod {
                consent_id: id.to_string(),
                recorded_by: c.recorded_by.to_string(),
                from: c.in_force_from().millis(),
                until: c.grant.scope.valid_until.map(Timestamp::millis),
                withdrawn_at: c.withdrawal.as_ref().map(|w| w.effective_at.millis()),
            })
            .collect();
        self.handovers = s
            .custody_log()
            .windows(2)
            .map(|w| Handover {
                at: w[1].at.millis(),
                from: w[0].custodian.to_string(),
                to: w[1].custodian.to_string(),
                event_id: w[1].event.to_string(),
            })
            .collect();
    }

    /// Writes the timeline as a text table (time, agency, event, custodian
    /// after, basis).
    ///
    /// # Errors
    /// Write errors.
    pub fn write_table(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(w, "custody timeline of case {}", self.case_id)?;
        writeln!(
            w,
            "{:<24}  {:<20}  {:<30}  {:<20}  {:<44}  finding",
            "time", "agency", "event", "custodian after", "basis"
        )?;
        for r in &self.rows {
            let event = match &r.recipient {
                Some(to) => format!("{} → {to}", r.event),
                None => r.event.clone(),
            };
            writeln!(
                w,
                "{:<24}  {:<20}  {:<30}  {:<20}  {:<44}  {}",
                Timestamp::from_millis(r.at).to_string(),
                r.agency,
                event,
                r.custodian_after.as_deref().unwrap_or("-"),
                r.basis,
                r.finding.as_ref().map_or("", |f| f.0.as_str())
            )?;
        }
        for c in &self.consents {
            writeln!(
                w,
                "consent {} by {}: in force {} … {}{}",
                c.consent_id,
                c.recorded_by,
                Timestamp::from_millis(c.from),
                c.until
                    .map_or("open".into(), |u| Timestamp::from_millis(u).to_string()),
                c.withdrawn_at.map_or(String::new(), |t| format!(
                    ", withdrawn from {}",
                    Timestamp::from_millis(t)
                ))
            )?;
        }
        writeln!(
            w,
            "custodian now: {}",
            self.custodian.as_deref().unwrap_or("-")
        )
    }
}
