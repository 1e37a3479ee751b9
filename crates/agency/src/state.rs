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
        let mut map = self
            .map
            .lock()
            .map_err(|_| JournalError::Failed("the case view lock is poisoned".into()))?;
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
        loop {
            let page = journal.case_entries(&case, shared.after, 512)?;
            let Some(last) = page.last().map(|(s, _)| *s) else {
                break;
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
        }
        if shared.entries == 0 {
            map.remove(&case);
            return Ok(None);
        }
        Ok(Some(Arc::clone(shared)))
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
