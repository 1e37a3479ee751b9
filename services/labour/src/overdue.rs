//! The monitoring read model behind `ListOverdueMonitoring`: every case's
//! [`CaseMonitoring`], folded from this agency's own journal and kept in
//! step with it.
//!
//! The model remembers the last journal seq it read; each query first reads
//! the entries after it ([`Recorder::facts_after`]: events originated here
//! or received, forwards unwrapped) and then computes the overdue visits at
//! the query's time. Schedules and contacts from other agencies count too
//! (an NGO's monitoring contact sent here fulfils a visit). After a restart
//! the first query reads the journal once from the start. Queries are
//! serialised by one async mutex; a recording call answers only once its
//! entry is durable, so a later query always sees it.

use std::collections::HashMap;

use tokio::sync::Mutex;
use waymark_agency::{ApiError, Recorder};
use waymark_policy::wire::{timestamp_from_proto, timestamp_to_proto};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::labour::v1 as labour;
use waymark_types::Timestamp;

use crate::monitoring::CaseMonitoring;

/// Journal entries read per step while catching up.
const STEP: usize = 512;

#[derive(Debug, Default)]
struct Seen {
    cursor: u64,
    cases: HashMap<String, CaseMonitoring>,
}

impl Seen {
    fn apply(&mut self, e: pb::Event) {
        let Some(at) = e.occurred_at.as_ref().and_then(timestamp_from_proto) else {
            return;
        };
        if e.case_id.is_empty() {
            return;
        }
        let relevant = matches!(
            e.body,
            Some(B::MonitoringScheduled(_) | B::MonitoringContactRecorded(_) | B::CaseClosed(_))
        );
        if !relevant {
            return;
        }
        let case = self.cases.entry(e.case_id.clone()).or_default();
        match &e.body {
            Some(B::MonitoringScheduled(m)) => {
                let visits = m.visits.iter().filter_map(timestamp_from_proto).collect();
                case.scheduled(at, visits);
            }
            Some(B::MonitoringContactRecorded(m)) => case.contacted(at, &e.event_id, m.mode),
            Some(B::CaseClosed(_)) => case.closed(),
            _ => {}
        }
    }
}

/// The read model.
#[derive(Debug, Default)]
pub(crate) struct Overdue(Mutex<Seen>);

impl Overdue {
    /// Every overdue visit at `now`, oldest first.
    pub(crate) async fn list(
        &self,
        rec: &Recorder,
        now: Timestamp,
    ) -> Result<Vec<labour::OverdueVisit>, ApiError> {
        let mut seen = self.0.lock().await;
        loop {
            let (facts, next) = rec.facts_after(seen.cursor, STEP).await?;
            for (_, e) in facts {
                seen.apply(e);
            }
            if next == seen.cursor {
                break;
            }
            seen.cursor = next;
        }
        let mut due: Vec<(Timestamp, &str)> = seen
            .cases
            .iter()
            .flat_map(|(case, m)| m.overdue(now).into_iter().map(|d| (d, case.as_str())))
            .collect();
        due.sort_unstable();
        Ok(due
            .into_iter()
            .map(|(d, case)| labour::OverdueVisit {
                case_id: case.to_owned(),
                due_at: Some(timestamp_to_proto(d)),
            })
            .collect())
    }
}
