//! The live journal: appends with group commit, outbox, dedup, checkpoints,
//! proofs.
//!
//! # Group commit
//! An appender builds its entry under the state lock (seq, prev_hash, Merkle
//! nodes are decided there, so entries are ordered), adds it to the pending
//! [`Batch`] and takes a ticket. If no commit is running it becomes the
//! leader: it takes *everything* pending and commits it in one store commit
//! (one fsync) outside the lock. Appenders arriving meanwhile add to the next
//! pending batch and sleep on a condition variable; as soon as the running
//! batch is durable they wake and one of them leads the next commit with all
//! that accumulated, while the previous batch's index update still runs
//! (pipelining, see `journal_commit.rs`). Concurrent appenders thus share
//! fsyncs, and nobody returns before the fsync covering its entry and the
//! index update making it readable.
//!
//! Readers only ever see committed (durable) state, because reads go to the
//! store and batches become visible in the store only after their fsync.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};

use prost::Message;
use waymark_crypto::{
    AgencyKey, KeyRing, proto_from_timestamp, sign_envelope, timestamp_from_proto,
};
use waymark_proto::v1::{
    Checkpoint, ConsistencyProof, Cosignature, EntryKind, Envelope, Equivocation, Event,
    InclusionProof, JournalEntry, Quarantine,
};
use waymark_proto::{PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_COSIGNATURE, PAYLOAD_TYPE_EVENT};
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::error::{JournalError, store};
use crate::merkle::{self, Frontier, Hash, NodeSource};
use crate::store::{
    Batch, JournalStore, OutboxItem, StoreError, StoredCheckpoint, StoredCosignature, StoredEntry,
};

/// Journal settings.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The agency whose journal this is.
    pub agency: AgencyId,
    /// Sign a checkpoint once this many entries are not yet covered by one.
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint once the oldest entry not covered by one is this old.
    pub checkpoint_every_ms: i64,
}

impl JournalConfig {
    /// Defaults: a checkpoint every 1000 entries or every 60 s.
    pub fn new(agency: AgencyId) -> Self {
        Self {
            agency,
            checkpoint_every_entries: 1000,
            checkpoint_every_ms: 60_000,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// A new entry, now durable.
    New {
        /// Its seq.
        seq: u64,
        /// Its entry hash.
        hash: Hash,
    },
    /// The event was already journaled (a redelivery); nothing was written.
    Existing {
        /// The seq of the entry that holds it.
        seq: u64,
    },
}

impl Appended {
    /// The seq of the entry holding the event, new or existing.
    pub fn seq(&self) -> u64 {
        match self {
            Self::New { seq, .. } | Self::Existing { seq } => *seq,
        }
    }
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    head: Hash,
    frontier: Frontier,
    pending: Batch,
    next_ticket: u64,
    durable_ticket: u64,
    /// Tickets up to this one are in a batch a leader has taken.
    taken_ticket: u64,
    pending_events: HashMap<EventId, u64>,
    pending_outbox: HashSet<(u64, AgencyId)>,
    pending_removed: HashSet<(u64, AgencyId)>,
    failed: Option<String>,
    /// A leader is committing right now.
    committing: bool,
    /// Size covered by the latest checkpoint (0 if none).
    last_checkpoint: u64,
}

/// One agency's journal over a [`JournalStore`].
#[derive(Debug)]
pub struct Journal<S: JournalStore> {
    store: S,
    config: JournalConfig,
    signer: Option<AgencyKey>,
    state: Mutex<State>,
    /// Signalled whenever a commit ends.
    committed: Condvar,
    checkpoint_lock: Mutex<()>,
}

/// Reads Merkle nodes from a store.
pub(crate) struct StoreNodes<'a, S: ?Sized>(pub(crate) &'a S);

impl<S: JournalStore + ?Sized> NodeSource for StoreNodes<'_, S> {
    type Error = StoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        self.0.node(level, index)
    }
}

/// The fields of an event envelope the journal indexes.
struct EventFacts {
    event_id: EventId,
    case_id: Option<CaseId>,
    sender: AgencyId,
    recipient: Option<AgencyId>,
}

fn event_facts(envelope: &[u8]) -> Result<EventFacts, JournalError> {
    let env = Envelope::decode(envelope)
        .map_err(|_| JournalError::BadEnvelope("not an Envelope encoding"))?;
    if env.payload_type != PAYLOAD_TYPE_EVENT {
        return Err(JournalError::BadEnvelope("payload type is not event"));
    }
    let ev = Event::decode(env.payload.as_slice())
        .map_err(|_| JournalError::BadEnvelope("payload is not an Event"))?;
    let event_id =
        EventId::parse(&ev.event_id).map_err(|_| JournalError::BadEnvelope("bad event_id"))?;
    let case_id = if ev.case_id.is_empty() {
        None
    } else {
        Some(CaseId::parse(&ev.case_id).map_err(|_| JournalError::BadEnvelope("bad case_id"))?)
    };
    let sender =
        AgencyId::new(&ev.sender_id).map_err(|_| JournalError::BadEnvelope("bad sender_id"))?;
    let recipient = if ev.recipient_id.is_empty() {
        None
    } else {
        Some(
            AgencyId::new(&ev.recipient_id)
                .map_err(|_| JournalError::BadEnvelope("bad recipient_id"))?,
        )
    };
    Ok(EventFacts {
        event_id,
        case_id,
        sender,
        recipient,
    })
}

/// An entry to build, with its side effects.
struct Draft {
    entry: JournalEntry,
    case_id: Option<CaseId>,
    event_id: Option<EventId>,
    outbox_to: Option<AgencyId>,
    completes: Option<(EventId, AgencyId)>,
}

impl<S: JournalStore> Journal<S> {
    /// Opens the journal over `store`. `signer` is the agency's current key,
    /// needed only to sign checkpoints (a read-only or imported journal has
    /// none).
    ///
    /// # Errors
    /// A store read failure while loading the head and Merkle frontier.
    pub fn open(
        store: S,
        config: JournalConfig,
        signer: Option<AgencyKey>,
    ) -> Result<Self, JournalError> {
        let size = store
            .size()
            .map_err(store_err("reading the journal size"))?;
        let head = if size == 0 {
            [0u8; 32]
        } else {
            store
                .entry(size)
                .map_err(store_err("reading the head entry"))?
                .ok_or_else(|| JournalError::Store {
                    step: "reading the head entry",
                    source: StoreError::Corrupt(format!("entry {size} is missing")),
                })?
                .hash
        };
        let frontier = Frontier::load(&StoreNodes(&store), size)
            .map_err(store_err("loading the Merkle frontier"))?;
        let last_checkpoint = store
            .latest_checkpoint()
            .map_err(store_err("reading the latest checkpoint"))?
            .map_or(0, |c| c.size);
        Ok(Self {
            store,
            config,
            signer,
            state: Mutex::new(State {
                next_seq: size + 1,
                head,
                frontier,
                pending: Batch::default(),
                next_ticket: 0,
                durable_ticket: 0,
                taken_ticket: 0,
                pending_events: HashMap::new(),
                pending_outbox: HashSet::new(),
                pending_removed: HashSet::new(),
                failed: None,
                committing: false,
                last_checkpoint,
            }),
            committed: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    /// The agency's signing key, if the journal was opened with one.
    pub(crate) fn signer(&self) -> Option<&AgencyKey> {
        self.signer.as_ref()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, JournalError> {
        self.state
            .lock()
            .map_err(|_| JournalError::Failed("a journal thread panicked".into()))
    }

    /// Journals an event this agency signed. If the event has a recipient it
    /// is queued in the outbox in the same atomic commit. Idempotent by event
    /// id: appending the same event again returns [`Appended::Existing`].
    ///
    /// # Errors
    /// [`JournalError::BadEnvelope`] if `envelope` is not an encoded event
    /// envelope; store or commit failures.
    pub fn append_originated(
        &self,
        envelope: &[u8],
        at: Timestamp,
    ) -> Result<Appended, JournalError> {
        let f = event_facts(envelope)?;
        self.append(Draft {
            entry: entry(EntryKind::Originated, at, envelope.to_vec(), f.case_id),
            case_id: f.case_id,
            event_id: Some(f.event_id),
            outbox_to: f.recipient,
            completes: None,
        })
    }

    /// Journals an event received from another agency (already verified by
    /// the caller), unless its event id is already journaled, in which case
    /// the existing seq is returned. If `completes` names an event this agency
    /// originated, the outbox item (that event, this sender) is removed in
    /// the same atomic commit: the receipt completes the delivery.
    ///
    /// # Errors
    /// [`JournalError::BadEnvelope`], [`JournalError::UnknownCompletedEvent`],
    /// store or commit failures.
    pub fn append_received(
        &self,
        envelope: &[u8],
        at: Timestamp,
        completes: Option<EventId>,
    ) -> Result<Appended, JournalError> {
        let f = event_facts(envelope)?;
        self.append(Draft {
            entry: entry(EntryKind::Received, at, envelope.to_vec(), f.case_id),
            case_id: f.case_id,
            event_id: Some(f.event_id),
            outbox_to: None,
            completes: completes.map(|c| (c, f.sender)),
        })
    }

    /// Journals a quarantined bus message.
    ///
    /// # Errors
    /// Store or commit failures.
    pub fn append_quarantined(
        &self,
        quarantine: Quarantine,
        at: Timestamp,
    ) -> Result<Appended, JournalError> {
        let mut e = entry(EntryKind::Quarantined, at, Vec::new(), None);
        e.quarantine = Some(quarantine);
        self.append(Draft {
            entry: e,
            case_id: None,
            event_id: None,
            outbox_to: None,
            completes: None,
        })
    }

    /// Journals another agency's checkpoint envelope that this agency
    /// verified and cosigned.
    ///
    /// # Errors
    /// Store or commit failures.
    pub fn append_witnessed(
        &self,
        checkpoint_envelope: &[u8],
        at: Timestamp,
    ) -> Result<Appended, JournalError> {
        let e = entry(
            EntryKind::CheckpointWitnessed,
            at,
            checkpoint_envelope.to_vec(),
            None,
        );
        self.append(Draft {
            entry: e,
            case_id: None,
            event_id: None,
            outbox_to: None,
            completes: None,
        })
    }

    /// Journals evidence of another agency's equivocation.
    ///
    /// # Errors
    /// Store or commit failures.
    pub fn append_equivocation(
        &self,
        evidence: Equivocation,
        at: Timestamp,
    ) -> Result<Appended, JournalError> {
        let mut e = entry(EntryKind::Equivocation, at, Vec::new(), None);
        e.equivocation = Some(evidence);
        self.append(Draft {
            entry: e,
            case_id: None,
            event_id: None,
            outbox_to: None,
            completes: None,
        })
    }
}

fn store_err(step: &'static str) -> impl FnOnce(StoreError) -> JournalError {
    store(step)
}

fn entry(kind: EntryKind, at: Timestamp, envelope: Vec<u8>, case: Option<CaseId>) -> JournalEntry {
    JournalEntry {
        seq: 0,
        prev_hash: Vec::new(),
        recorded_at: Some(proto_from_timestamp(at)),
        kind: kind as i32,
        envelope,
        case_id: case.map(|c| c.to_string()).unwrap_or_default(),
        quarantine: None,
        equivocation: None,
    }
}

#[path = "journal_commit.rs"]
mod commit;
#[path = "journal_read.rs"]
mod read;
