//! Policy replay in the auditor's merged view, one [`CaseState`] per case,
//! fed event by event as the time-merged journals stream by; plus the
//! audit-level consent check the policy core does not make (a backdated
//! consent) and the outstanding withdrawal acknowledgements at the end.
//!
//! Memory: one `CaseState` per case: the case's facts plus, per applied
//! event, its id and a content digest (the policy core keeps no event
//! bodies); see the crate docs, "Memory model".

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::Message;
use waymark_crypto::timestamp_from_proto;
use waymark_policy::wire::{WireEvent, event_from_proto};
use waymark_policy::{Applied, CaseState, DisclosureBasis, Event, Rule, RuleSets, View, Violation};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1 as pb;
use waymark_types::{CaseId, EventId, Timestamp};

use crate::finding::{Finding, Location, Severity, rules};
use crate::keys::Keys;
use crate::timeline::{CaseTimeline, Row};

/// A consent may start this long before the journal recorded its grant
/// (clock skew between the caseworker's screen and the journal), no more.
pub const BACKDATE_TOLERANCE_MS: i64 = 60_000;

/// Which cases get a timeline.
#[derive(Debug, Clone)]
pub(crate) enum Track {
    /// One case.
    One(CaseId),
    /// The first `n` cases seen.
    First(usize),
}

/// The replay.
pub(crate) struct Replayer {
    rule_sets: RuleSets,
    cases: HashMap<CaseId, CaseState>,
    reported: HashSet<(String, EventId)>,
    withdrawals: HashMap<EventId, Location>,
    track: Track,
    pub(crate) timelines: BTreeMap<CaseId, CaseTimeline>,
    order: Vec<CaseId>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) events_applied: u64,
}

impl Replayer {
    /// A replay under the built-in rule sets.
    pub(crate) fn new(track: Track) -> Self {
        Self {
            rule_sets: RuleSets::builtin(),
            cases: HashMap::new(),
            reported: HashSet::new(),
            withdrawals: HashMap::new(),
            track,
            timelines: BTreeMap::new(),
            order: Vec::new(),
            findings: Vec::new(),
            events_applied: 0,
        }
    }

    /// Number of cases seen.
    pub(crate) fn cases(&self) -> usize {
        self.cases.len()
    }

    fn once(&mut self, rule: String, id: EventId, f: impl FnOnce(String) -> Finding) {
        if self.reported.insert((rule.clone(), id)) {
            self.findings.push(f(rule));
        }
    }

    /// One sighting of `ev`. `authoritative` is true for the sender's own
    /// copy, or the first copy when the sender's export is absent.
    pub(crate) fn on_event(
        &mut self,
        keys: &Keys,
        loc: &Location,
        recorded_at: i64,
        ev: &pb::Event,
        authoritative: bool,
    ) {
        let Ok(id) = EventId::parse(&ev.event_id) else {
            return;
        };
        match event_from_proto(ev) {
            Err(e) => self.once(rules::EVENT_MALFORMED.into(), id, |r| {
                Finding::new(Severity::Error, r, loc.clone(), e.to_string())
            }),
            Ok(WireEvent::Capacity { .. }) => {}
            Ok(WireEvent::Forwarded { envelope, .. }) => {
                self.forwarded(keys, loc, recorded_at, &envelope, authoritative);
            }
            Ok(WireEvent::Event(e)) => {
                if authoritative {
                    self.backdated(loc, recorded_at, ev, id);
                }
                self.apply(loc, &e);
            }
        }
    }

    fn forwarded(
        &mut self,
        keys: &Keys,
        loc: &Location,
        recorded_at: i64,
        envelope: &[u8],
        authoritative: bool,
    ) {
        let inner = pb::Envelope::decode(envelope).ok().and_then(|env| {
            let ev = pb::Event::decode(env.payload.as_slice()).ok()?;
            let at = timestamp_from_proto(ev.occurred_at.as_ref()?);
            let ok = keys.signed_by(&env, &ev.sender_id)
                && keys.ring.verify(&env, PAYLOAD_TYPE_EVENT, at).is_ok();
            Some((ev, ok))
        });
        match inner {
            // The inner event is the originator's; a nested forward is not followed.
            Some((ev, true)) if !matches!(ev.body, Some(pb::event::Body::Forwarded(_))) => {
                self.on_event(keys, loc, recorded_at, &ev, authoritative);
            }
            Some((ev, false)) if keys.knows_agency(&ev.sender_id) => {
                self.findings.push(Finding::new(
                    Severity::Critical,
                    rules::JOURNAL_SIGNATURE_INVALID,
                    loc.clone(),
                    format!(
                        "forwarded event {} does not verify with {}'s keys",
                        ev.event_id, ev.sender_id
                    ),
                ));
            }
            _ => {}
        }
    }

    /// `consent.backdated`: validity starting before the grant was journaled.
    fn backdated(&mut self, loc: &Location, recorded_at: i64, ev: &pb::Event, id: EventId) {
        let Some(pb::event::Body::ConsentGranted(g)) = &ev.body else {
            return;
        };
        let from = g.valid_from.as_ref().or(ev.occurred_at.as_ref());
        let Some(from) = from.map(timestamp_from_proto) else {
            return;
        };
        if from.millis() < recorded_at - BACKDATE_TOLERANCE_MS {
            let rec = Timestamp::from_millis(recorded_at);
            self.once(rules::CONSENT_BACKDATED.into(), id, |r| {
                Finding::new(
                    Severity::Error,
                    r,
                    loc.clone(),
                    format!(
                        "consent valid from {from}, but its grant was journaled at {rec}: \
                         it claims to have been in force before it was recorded"
                    ),
                )
            });
        }
    }

    fn apply(&mut self, loc: &Location, e: &Event) {
        let case = e.case;
        let state = self
            .cases
            .entry(case)
            .or_insert_with(|| CaseState::new(case, View::Auditor));
        let result = match self.rule_sets.get(&e.rule_set) {
            Some(rules) => state.apply(e, rules),
            None => Err(Violation::new(
                Rule::RuleSetUnknown,
                &e.rule_set,
                format!("rule set {} is not known to this auditor", e.rule_set),
            )),
        };
        let custodian = state.custodian().map(ToString::to_string);
        if matches!(e.body, waymark_policy::Body::ConsentWithdrawn { .. }) && result.is_ok() {
            self.withdrawals.entry(e.id).or_insert_with(|| loc.clone());
        }
        let finding = match &result {
            Ok(Applied::Duplicate) => return,
            Ok(Applied::Recorded { .. }) => {
                self.events_applied += 1;
                None
            }
            Err(v) => {
                let rule = format!("{}{}", rules::POLICY_PREFIX, v.rule.code());
                self.once(rule.clone(), e.id, |r| {
                    Finding::new(Severity::Error, r, loc.clone(), v.to_string())
                });
                Some(rule)
            }
        };
        if self.tracked(case) {
            let basis = match e.disclosure.as_ref().map(|d| &d.basis) {
                Some(DisclosureBasis::Consent(c)) => format!("consent {c}"),
                Some(DisclosureBasis::Legal { basis, .. }) => format!("legal: {basis}"),
                None => "-".into(),
            };
            let tl = self
                .timelines
                .entry(case)
                .or_insert_with(|| CaseTimeline::new(case.to_string()));
            tl.rows.push(Row {
                at: e.at.millis(),
                agency: e.sender.id.to_string(),
                recipient: e.recipient.as_ref().map(|r| r.id.to_string()),
                event: e.body.kind().as_str().to_owned(),
                event_id: e.id.to_string(),
                custodian_after: custodian,
                basis,
                journal: loc.agency.clone(),
                seq: loc.seq.unwrap_or(0),
                finding: finding.map(|f| (f, Severity::Error)),
            });
        }
    }

    fn tracked(&mut self, case: CaseId) -> bool {
        match &self.track {
            Track::One(c) => *c == case,
            Track::First(n) => {
                if self.order.contains(&case) {
                    return true;
                }
                if self.order.len() < *n {
                    self.order.push(case);
                    return true;
                }
                false
            }
        }
    }

    /// Outstanding withdrawal acknowledgements, custody and consent facts
    /// for the timelines; returns every replay finding.
    pub(crate) fn finish(mut self) -> (Vec<Finding>, BTreeMap<CaseId, CaseTimeline>) {
        let mut ids: Vec<(&CaseId, &CaseState)> = self.cases.iter().collect();
        ids.sort_by_key(|(c, _)| **c);
        for (case, state) in ids {
            for (consent_id, c) in state.consents() {
                let Some(w) = &c.withdrawal else { continue };
                let Some(st) = state.withdrawal_status(*consent_id) else {
                    continue;
                };
                let loc = self
                    .withdrawals
                    .get(&w.event)
                    .cloned()
                    .unwrap_or_else(|| Location::journal(w.by.as_str()))
                    .with_event(&w.event.to_string())
                    .with_case(&case.to_string());
                for a in &st.outstanding {
                    self.findings.push(Finding::new(
                        Severity::Warning,
                        rules::WITHDRAWAL_OUTSTANDING,
                        loc.clone(),
                        format!(
                            "{a} has not acknowledged the withdrawal of consent {consent_id} \
                             (effective {})",
                            w.effective_at
                        ),
                    ));
                }
            }
            if let Some(tl) = self.timelines.get_mut(case) {
                tl.fill_from_state(state);
            }
        }
        (self.findings, self.timelines)
    }
}
