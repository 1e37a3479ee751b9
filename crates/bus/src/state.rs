//! Case states for policy checks, rebuilt from this agency's journal through
//! the per-case index and cached.
//!
//! A cached state remembers the last journal seq folded into it and catches
//! up from there before every use, so entries written by anyone (this bus,
//! a restart, another writer) are always seen. Applying an event that is
//! already in the state is a no-op ([`Applied::Duplicate`]), so an event
//! applied during a check and then read back from the journal is harmless.
//! On a failed journal append the case is dropped from the cache.

use std::collections::HashMap;
use std::sync::Mutex;

use prost::Message;
use waymark_journal::{Journal, JournalError, SledStore};
use waymark_policy::{Applied, CaseState, RuleSets, View, WireEvent, event_from_proto};
use waymark_proto::v1::{EntryKind, Envelope, Event as PbEvent, JournalEntry};
use waymark_types::{AgencyId, CaseId};

struct Cached {
    state: CaseState,
    after: u64,
}

/// The cache.
pub(crate) struct CaseCache {
    me: AgencyId,
    cap: usize,
    cases: Mutex<HashMap<CaseId, Cached>>,
}

impl CaseCache {
    pub(crate) fn new(me: AgencyId, cap: usize) -> Self {
        Self {
            me,
            cap,
            cases: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the caught-up state of `case`.
    pub(crate) fn with_case<R>(
        &self,
        journal: &Journal<SledStore>,
        rules: &RuleSets,
        case: CaseId,
        f: impl FnOnce(&mut CaseState) -> R,
    ) -> Result<R, JournalError> {
        let mut cases = self
            .cases
            .lock()
            .map_err(|_| JournalError::Failed("the case cache lock is poisoned".into()))?;
        if cases.len() >= self.cap && !cases.contains_key(&case) {
            cases.clear();
        }
        let c = cases.entry(case).or_insert_with(|| Cached {
            state: CaseState::new(case, View::Agency(self.me.clone())),
            after: 0,
        });
        loop {
            let page = journal.case_entries(&case, c.after, 512)?;
            let Some(last) = page.last().map(|(s, _)| *s) else {
                break;
            };
            for (_, bytes) in &page {
                fold(&mut c.state, rules, bytes);
            }
            c.after = last;
        }
        Ok(f(&mut c.state))
    }

    /// [`CaseCache::with_case`] for an async thread: only if the cache's
    /// lock is free now, `case` is cached and fewer than `budget` entries
    /// behind. Otherwise `None`, having folded what it read (call
    /// [`CaseCache::with_case`] on a blocking thread then).
    pub(crate) fn try_with_case<R>(
        &self,
        journal: &Journal<SledStore>,
        rules: &RuleSets,
        case: CaseId,
        budget: usize,
        f: impl FnOnce(&mut CaseState) -> R,
    ) -> Result<Option<R>, JournalError> {
        // A poisoned lock is reported by the blocking path.
        let Ok(mut cases) = self.cases.try_lock() else {
            return Ok(None);
        };
        let Some(c) = cases.get_mut(&case) else {
            return Ok(None);
        };
        let page = journal.case_entries(&case, c.after, budget)?;
        for (_, bytes) in &page {
            fold(&mut c.state, rules, bytes);
        }
        if let Some((last, _)) = page.last() {
            c.after = *last;
        }
        if page.len() >= budget {
            return Ok(None);
        }
        Ok(Some(f(&mut c.state)))
    }

    /// Forgets `case` (after a failed append that a check had applied).
    pub(crate) fn invalidate(&self, case: &CaseId) {
        if let Ok(mut c) = self.cases.lock() {
            c.remove(case);
        }
    }
}

/// Folds one journal entry into a state; entries that are not accepted events
/// (quarantine, checkpoints) or that the rules refuse are skipped.
fn fold(state: &mut CaseState, rules: &RuleSets, entry_bytes: &[u8]) -> Option<Applied> {
    let entry = JournalEntry::decode(entry_bytes).ok()?;
    let kind = EntryKind::try_from(entry.kind).ok()?;
    if !matches!(kind, EntryKind::Originated | EntryKind::Received) {
        return None;
    }
    let ev = decode_event(&entry.envelope)?;
    match event_from_proto(&ev).ok()? {
        WireEvent::Event(e) => state.apply(&e, rules.get(&e.rule_set)?).ok(),
        WireEvent::Forwarded { envelope, .. } => {
            let inner = decode_event(&envelope)?;
            let e = event_from_proto(&inner).ok()?.into_event()?;
            state.apply(&e, rules.get(&e.rule_set)?).ok()
        }
        WireEvent::Capacity { .. } => None,
    }
}

/// Decodes an event envelope's event (no verification).
pub(crate) fn decode_event(envelope: &[u8]) -> Option<PbEvent> {
    let env = Envelope::decode(envelope).ok()?;
    PbEvent::decode(env.payload.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_crypto::{AgencyKey, sign_envelope};
    use waymark_journal::{JournalConfig, SledConfig};
    use waymark_proto::PAYLOAD_TYPE_EVENT;
    use waymark_types::{EventId, Timestamp};

    fn append(j: &Journal<SledStore>, key: &AgencyKey, case: CaseId, n: usize) -> u64 {
        let mut last = 0;
        for _ in 0..n {
            let ev = PbEvent {
                event_id: EventId::new().to_string(),
                case_id: case.to_string(),
                sender_id: "police-a".into(),
                ..PbEvent::default()
            };
            let env = sign_envelope(key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec();
            last = j.append_originated(&env, Timestamp::now()).unwrap().seq();
        }
        last
    }

    fn after(cache: &CaseCache, case: CaseId) -> u64 {
        cache.cases.lock().unwrap()[&case].after
    }

    /// The async path of the policy check: only a cached view, only within
    /// its budget (keeping what it folded), never waiting for the lock.
    #[test]
    fn a_cached_view_is_used_on_the_async_path_only_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let key = AgencyKey::generate();
        let me = AgencyId::new("police-a").unwrap();
        let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let j = Journal::open(store, JournalConfig::new(me.clone()), Some(key.clone())).unwrap();
        let rules = RuleSets::builtin();
        let cache = CaseCache::new(me, 100);
        let case = CaseId::new();
        let first = append(&j, &key, case, 2);
        let here = |budget| {
            cache
                .try_with_case(&j, &rules, case, budget, |_| ())
                .unwrap()
        };

        // Not cached: the blocking path folds it.
        assert_eq!(here(32), None);
        cache.with_case(&j, &rules, case, |_| ()).unwrap();
        assert_eq!(after(&cache, case), first);

        // A few entries behind: caught up here.
        let last = append(&j, &key, case, 3);
        assert_eq!(here(32), Some(()));
        assert_eq!(after(&cache, case), last);

        // 40 behind with a budget of 32: not here, but the 32 it read stay
        // folded; the other 8 fit the next time.
        let seqs: Vec<u64> = (0..40).map(|_| append(&j, &key, case, 1)).collect();
        assert_eq!(here(32), None);
        assert_eq!(after(&cache, case), seqs[31]);
        assert_eq!(here(32), Some(()));
        assert_eq!(after(&cache, case), seqs[39]);

        // Another thread holds the cache: not here, and no waiting.
        let held = cache.cases.lock().unwrap();
        assert!(
            cache
                .try_with_case(&j, &rules, case, 32, |_| ())
                .unwrap()
                .is_none()
        );
        drop(held);
    }
}
