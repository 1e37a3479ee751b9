//! Deterministic replay: folding a journal's events rebuilds the state.
//!
//! Each event is checked under the rule set *it names*, looked up in the
//! registry; an event naming an unknown version is reported, never evaluated
//! under another version. A refused event is reported with its violation and
//! skipped (it changes nothing), exactly as an agency quarantines it, so the
//! fold of the same events under the same registry always yields an equal
//! state and the same list of violations.

use std::collections::BTreeMap;

use serde::Serialize;
use waymark_types::{CaseId, EventId};

use crate::event::Event;
use crate::rules::RuleSets;
use crate::state::{CaseState, View};
use crate::violation::{Rule, Violation};

/// The result of folding one case's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    /// The state after every accepted event.
    pub state: CaseState,
    /// Refused events, in journal order, with why.
    pub violations: Vec<(EventId, Violation)>,
}

/// Folds `events` (in journal order) about `case` as seen by `view`.
pub fn replay<'a>(
    case: CaseId,
    view: View,
    events: impl IntoIterator<Item = &'a Event>,
    rule_sets: &RuleSets,
) -> Replay {
    let mut state = CaseState::new(case, view);
    let mut violations = Vec::new();
    for e in events {
        let result = match rule_sets.get(&e.rule_set) {
            Some(rules) => state.apply(e, rules),
            None => Err(Violation::new(
                Rule::RuleSetUnknown,
                &e.rule_set,
                format!(
                    "This event was made under rule set {}, which this system does not know. \
                     Install that rule-set version to check it; it was not evaluated under another version.",
                    e.rule_set
                ),
            )),
        };
        if let Err(v) = result {
            violations.push((e.id, v));
        }
    }
    Replay { state, violations }
}

/// Folds a whole journal (several cases, in journal order) as seen by `view`,
/// one [`Replay`] per case. Agency-level events (capacity updates) are not
/// about a case and are skipped.
pub fn replay_journal<'a>(
    view: &View,
    events: impl IntoIterator<Item = &'a Event>,
    rule_sets: &RuleSets,
) -> BTreeMap<CaseId, Replay> {
    let mut by_case: BTreeMap<CaseId, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if e.body.kind().is_case_event() {
            by_case.entry(e.case).or_default().push(e);
        }
    }
    by_case
        .into_iter()
        .map(|(case, evs)| (case, replay(case, view.clone(), evs, rule_sets)))
        .collect()
}
