//! This agency's view of each case: the policy [`CaseState`] folded from its
//! own journal through the per-case index, plus what the journal adds (entry
//! count, last update), cached.
//!
//! A cached view remembers the last seq folded in and catches up before every
//! use, so entries written by the bus (received events) are always seen. The
//! fold is the bus's: originated and received events are applied under the
//! rule set they name; a forward applies its inner event; entries the rules
//! refuse, quarantined input and checkpoints are skipped. The bus checks
//! every write again in its own view, so this cache only ever serves reads
//! and previews.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use waymark_journal::{Journal, JournalError, SledStore};
use waymark_policy::{CaseState, RuleSets, View, WireEvent, event_from_proto};
use waymark_proto::v1::{EntryKind, Envelope, Event as PbEvent, JournalEntry};
use waymark_types::{AgencyId, CaseId};

/// One case as this agency knows it.
#[derive(Debug, Clone)]
pub(crate) struct CaseInfo {
    /// The rules' state.
    pub(crate) state: CaseState,
    /// Journal entries about the case.
    pub(crate) entries: u64,
    /// When the newest of them was journaled.
    pub(crate) updated_at: Option<prost_types::Timestamp>,
    after: u64,
}

/// The cache.
#[derive(Debug)]
pub(crate) struct Cases {
    me: AgencyId,
    cap: usize,
    /// Shared with the callers that read a view: a catch-up copies a view
    /// only while a caller still holds it (`Arc::make_mut`), so a read costs
    /// a reference count, not a copy of a state that grows with the case.
    map: Mutex<HashMap<CaseId, Arc<CaseInfo>>>,
}

impl Cases {
    pub(crate) fn new(me: AgencyId, cap: usize) -> Self {
        Self {
            me,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The caught-up view of `case`, or `None` when the journal has no entry
    /// about it.
    pub(crate) fn get(
        &self,
        journal: &Journal<SledStore>,
        rules: &RuleSets,
        case: CaseId,
    ) -> Result<Option<Arc<CaseInfo>>, JournalError> {
        let mut map = self.lock()?;
        if map.len() >= self.cap && !map.contains_key(&case) {
            map.clear();
        }
        let shared = map.entry(case).or_insert_with(|| {
            Arc::new(CaseInfo {
                state: CaseState::new(case, View::Agency(self.me.clone())),
                entries: 0,
                updated_at: None,
                after: 0,
            })
        });
        catch_up(shared, journal, rules, case, usize::MAX)?;
        if shared.entries == 0 {
            map.remove(&case);
            return Ok(None);
        }
        Ok(Some(Arc::clone(shared)))
    }

    /// The caught-up view of `case` if it is cached and at most `budget`
    /// entries behind the journal: the cheap case (a point read of the
    /// case's newest seqs, a few entries folded), which callers run on an
    /// async thread. `None` otherwise, or while another caller holds the
    /// cache: ask [`Cases::get`] on a blocking thread (whatever of the
    /// budget was folded is kept).
    pub(crate) fn get_cached(
        &self,
        journal: &Journal<SledStore>,
        rules: &RuleSets,
        case: CaseId,
        budget: usize,
    ) -> Result<Option<Arc<CaseInfo>>, JournalError> {
        // Never wait for the lock here: its holder may be folding a whole
        // case on a blocking thread, and an async thread must not wait on
        // that. (A poisoned lock is reported by the blocking path.)
        let Ok(mut map) = self.map.try_lock() else {
            return Ok(None);
        };
        let Some(shared) = map.get_mut(&case) else {
            return Ok(None);
        };
        let done = catch_up(shared, journal, rules, case, budget)?;
        Ok(done.then(|| Arc::clone(shared)))
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<CaseId, Arc<CaseInfo>>>, JournalError> {
        self.map
            .lock()
            .map_err(|_| JournalError::Failed("the case view lock is poisoned".into()))
    }
}

/// Folds the entries about `case` after the view's last seq, reading at
/// most `budget` of them; true when the view has caught up with the journal
/// (an empty page says so: the read's limit is not a promise of fullness).
fn catch_up(
    shared: &mut Arc<CaseInfo>,
    journal: &Journal<SledStore>,
    rules: &RuleSets,
    case: CaseId,
    mut budget: usize,
) -> Result<bool, JournalError> {
    loop {
        let page = journal.case_entries(&case, shared.after, budget.min(512))?;
        let Some(last) = page.last().map(|(s, _)| *s) else {
            return Ok(true);
        };
        let c = Arc::make_mut(shared);
        for (_, bytes) in &page {
            if let Ok(entry) = JournalEntry::decode(bytes.as_slice()) {
                c.entries += 1;
                c.updated_at = entry.recorded_at;
                fold(&mut c.state, rules, &entry);
            }
        }
        c.after = last;
        budget = budget.saturating_sub(page.len());
        if budget == 0 {
            return Ok(false);
        }
    }
}

fn fold(state: &mut CaseState, rules: &RuleSets, entry: &JournalEntry) {
    let kind = EntryKind::try_from(entry.kind).ok();
    if !matches!(kind, Some(EntryKind::Originated | EntryKind::Received)) {
        return;
    }
    let Some(ev) = decode_event(&entry.envelope) else {
        return;
    };
    let Ok(wire) = event_from_proto(&ev) else {
        return;
    };
    let e = match wire {
        WireEvent::Event(e) => e,
        WireEvent::Forwarded { envelope, .. } => {
            let Some(inner) = decode_event(&envelope)
                .and_then(|i| event_from_proto(&i).ok())
                .and_then(WireEvent::into_event)
            else {
                return;
            };
            inner
        }
        WireEvent::Capacity { .. } => return,
    };
    if let Some(r) = rules.get(&e.rule_set) {
        let _ = state.apply(&e, r);
    }
}

/// Decodes an event envelope's event (no verification: the journal holds
/// only verified or self-signed envelopes).
pub(crate) fn decode_event(envelope: &[u8]) -> Option<PbEvent> {
    let env = Envelope::decode(envelope).ok()?;
    PbEvent::decode(env.payload.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_journal::{JournalConfig, SledConfig};
    use waymark_proto::PAYLOAD_TYPE_EVENT;
    use waymark_types::{EventId, Timestamp};

    /// An unsigned envelope of an event about `case` (the journal does not
    /// verify; the fold skips what the rules refuse, the count still grows).
    fn envelope(case: CaseId) -> Vec<u8> {
        let ev = PbEvent {
            event_id: EventId::new().to_string(),
            case_id: case.to_string(),
            sender_id: "bg-police-sofia".to_owned(),
            ..Default::default()
        };
        Envelope {
            payload_type: PAYLOAD_TYPE_EVENT.to_owned(),
            payload: ev.encode_to_vec(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_cached_view_catches_up_on_the_async_path_only_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let me = AgencyId::new("bg-police-sofia").unwrap();
        let journal = Journal::open(store, JournalConfig::new(me.clone()), None).unwrap();
        let rules = RuleSets::builtin();
        let (case, other) = (CaseId::new(), CaseId::new());
        let append = |c: CaseId, n: usize| {
            for _ in 0..n {
                journal
                    .append_originated(&envelope(c), Timestamp::now())
                    .unwrap();
            }
        };
        let cases = Cases::new(me, 16);
        let cached = |c: CaseId| cases.get_cached(&journal, &rules, c, 32).unwrap();
        let entries = |c: CaseId| cases.get(&journal, &rules, c).unwrap().unwrap().entries;
        append(case, 3);
        assert!(
            cached(case).is_none(),
            "a case not cached is folded on a blocking thread"
        );
        assert_eq!(entries(case), 3);

        append(case, 5);
        append(other, 2);
        let v = cached(case).unwrap();
        assert_eq!(v.entries, 8, "a few entries behind: caught up here");

        append(case, 40);
        assert!(
            cached(case).is_none(),
            "40 entries behind is more than the budget"
        );
        let v = cached(case).unwrap();
        assert_eq!(v.entries, 48, "the first 32 were kept; the rest fit");
        assert_eq!(entries(case), 48, "the blocking path agrees");
        assert!(cached(CaseId::new()).is_none());
    }
}
