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

use std::collections::{HashMap, HashSet, VecDeque};
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
    Batch, JournalStore, OutboxItem, RequestRecord, StoreError, StoredCheckpoint,
    StoredCosignature, StoredEntry,
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

/// An append ordered but not yet known durable ([`Journal::stage_received`],
/// [`Journal::stage_originated`]).
#[must_use = "a staged append is durable only once `Journal::wait_staged` (or a later append) returned"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    appended: Appended,
    ticket: u64,
}

impl Staged {
    /// What the append will be once durable: its seq, new or existing.
    pub fn appended(&self) -> Appended {
        self.appended
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
    /// Batches taken by a leader and not finished yet, oldest first:
    /// (generation, last ticket in it).
    in_flight: VecDeque<(u64, u64)>,
    /// Generation of the batch being gathered (the next one to be taken).
    pending_gen: u64,
    pending_events: HashMap<EventId, u64>,
    pending_outbox: HashSet<(u64, AgencyId)>,
    pending_removed: HashSet<(u64, AgencyId)>,
    /// Request records of staged, not yet committed entries, by key.
    pending_requests: HashMap<Vec<u8>, RequestRecord>,
    failed: Option<String>,
    /// A leader is committing right now.
    committing: bool,
    /// [`Journal::progress`] told a caller to lead, and that caller has not
    /// called [`Journal::lead`] yet (nor has any other leader started).
    lead_claimed: bool,
    /// Size covered by the latest checkpoint (0 if none).
    last_checkpoint: u64,
}

/// Where a staged append stands ([`Journal::progress`]), for a caller that
/// waits for it without holding a thread (an async task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Durable and visible: the append's outcome.
    Durable(Appended),
    /// Its batch needs a leader and none is committing: the caller must
    /// call [`Journal::lead`] (on a thread that may block). Told to one
    /// caller at a time.
    Lead,
    /// A commit is under way; ask again after the next
    /// [`Journal::on_progress`] call.
    Wait,
}

/// Condition variables the appenders wait on, one per batch generation
/// modulo this. At most four generations are alive at once (one finishing,
/// one applying its index update, one writing, one gathering), so waiters of
/// different live batches never share one; sharing would only cost spurious
/// wake-ups, never a lost one (every waiter re-checks under the lock).
pub(crate) const WAKE_SLOTS: usize = 8;

/// One agency's journal over a [`JournalStore`].
#[derive(Debug)]
pub struct Journal<S: JournalStore> {
    store: S,
    config: JournalConfig,
    signer: Option<AgencyKey>,
    state: Mutex<State>,
    /// Wake-ups per batch generation (`generation % WAKE_SLOTS`): the
    /// waiters of one batch sleep on their own condition variable, so a
    /// commit step wakes only the appenders it concerns (see
    /// `journal_commit.rs`).
    wake: [Condvar; WAKE_SLOTS],
    checkpoint_lock: Mutex<()>,
    /// Told the journal's size after every commit that made entries
    /// visible ([`Journal::on_grow`]).
    grow: Listeners,
    /// Called whenever a [`Progress`] may have changed
    /// ([`Journal::on_progress`]).
    progress: Listeners,
}

/// A callback of [`Journal::on_grow`] (told the size) or
/// [`Journal::on_progress`] (told nothing: its argument is 0).
type Listener = Box<dyn Fn(u64) + Send + Sync>;

/// Callbacks run after a commit step.
#[derive(Default)]
struct Listeners(Mutex<Vec<Listener>>);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |v| v.len());
        write!(f, "Listeners({n})")
    }
}

impl Listeners {
    fn notify(&self, size: u64) {
        if let Ok(v) = self.0.lock() {
            for f in v.iter() {
                f(size);
            }
        }
    }
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
    /// The request record to commit with the entry: (key, value).
    request: Option<(Vec<u8>, Vec<u8>)>,
}

/// The draft of an event this agency originated, with the request record
/// to commit with it, if any.
fn originated(
    envelope: &[u8],
    at: Timestamp,
    request: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<Draft, JournalError> {
    let f = event_facts(envelope)?;
    Ok(Draft {
        entry: entry(EntryKind::Originated, at, envelope.to_vec(), f.case_id),
        case_id: f.case_id,
        event_id: Some(f.event_id),
        outbox_to: f.recipient,
        completes: None,
        request,
    })
}

/// [`originated`] with a request record, its key checked.
fn originated_for_request(
    envelope: &[u8],
    at: Timestamp,
    request_key: &[u8],
    value: &[u8],
) -> Result<Draft, JournalError> {
    if request_key.is_empty() || request_key.len() > RequestRecord::MAX_KEY {
        return Err(JournalError::BadRequestKey);
    }
    let request = (request_key.to_vec(), value.to_vec());
    originated(envelope, at, Some(request))
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
                in_flight: VecDeque::new(),
                pending_gen: 0,
                pending_events: HashMap::new(),
                pending_outbox: HashSet::new(),
                pending_removed: HashSet::new(),
                pending_requests: HashMap::new(),
                failed: None,
                committing: false,
                lead_claimed: false,
                last_checkpoint,
            }),
            wake: std::array::from_fn(|_| Condvar::new()),
            checkpoint_lock: Mutex::new(()),
            grow: Listeners::default(),
            progress: Listeners::default(),
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
        self.append(originated(envelope, at, None)?)
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
        let staged = self.stage_received(envelope, at, completes)?;
        self.wait_staged(staged)
    }

    /// [`Journal::append_originated`] for a client's request: commits the
    /// request record `(request_key, value)` atomically with the entry (see
    /// [`RequestRecord`]), so that a retry of the request, even after a crash,
    /// finds exactly what was recorded, with no durable write of its own
    /// before the entry's.
    ///
    /// If a record under `request_key` exists (committed, or staged by a
    /// concurrent call), nothing is appended: the result is
    /// [`Appended::Existing`] with that record's entry seq, once it is
    /// durable; read the record with [`Journal::request_record`] to tell the
    /// two cases apart. As for any append, the same event id appended again
    /// is [`Appended::Existing`] too.
    ///
    /// # Errors
    /// [`JournalError::BadEnvelope`]; [`JournalError::BadRequestKey`] for an
    /// empty key or one over [`RequestRecord::MAX_KEY`] bytes; store or
    /// commit failures.
    pub fn append_originated_for_request(
        &self,
        envelope: &[u8],
        at: Timestamp,
        request_key: &[u8],
        value: &[u8],
    ) -> Result<Appended, JournalError> {
        self.append(originated_for_request(envelope, at, request_key, value)?)
    }

    /// The request record under `key`: committed, or staged by an append
    /// still in progress (its entry is then durable once that append
    /// returns).
    ///
    /// # Errors
    /// A store read failure.
    pub fn request_record(&self, key: &[u8]) -> Result<Option<RequestRecord>, JournalError> {
        if let Some(r) = self.lock()?.pending_requests.get(key) {
            return Ok(Some(r.clone()));
        }
        // Committed since (or long ago): the store has it.
        self.store
            .request_record(key)
            .map_err(store("reading a request record"))
    }

    /// [`Journal::append_received`] without waiting for the commit: the
    /// entry is ordered (its seq is in the returned [`Staged`]) and will be in
    /// the next commit, but is not known durable until
    /// [`Journal::wait_staged`] returns, or any append made after this call
    /// returns (commits are durable in order). This lets a receiver journal
    /// an event and the receipt naming its seq in one commit (one fsync)
    /// instead of two in a row; nothing derived from a staged entry may leave
    /// the process before one of those waits returned.
    ///
    /// # Errors
    /// As [`Journal::append_received`], except commit failures, which the
    /// wait reports.
    pub fn stage_received(
        &self,
        envelope: &[u8],
        at: Timestamp,
        completes: Option<EventId>,
    ) -> Result<Staged, JournalError> {
        let f = event_facts(envelope)?;
        self.stage(Draft {
            entry: entry(EntryKind::Received, at, envelope.to_vec(), f.case_id),
            case_id: f.case_id,
            event_id: Some(f.event_id),
            outbox_to: None,
            completes: completes.map(|c| (c, f.sender)),
            request: None,
        })
    }

    /// [`Journal::append_originated`] without waiting for the commit, as
    /// [`Journal::stage_received`] is to [`Journal::append_received`]: a
    /// receiver stages a whole batch of received events and their receipts
    /// and waits once, for the last of them, so the batch costs one commit.
    /// Nothing derived from the staged entry (its outbox item included) may
    /// leave the process before [`Journal::wait_staged`] of it, or of a later
    /// staged append, returned; the relay reads the outbox only from
    /// committed state, so it cannot publish it earlier.
    ///
    /// # Errors
    /// As [`Journal::append_originated`], except commit failures, which the
    /// wait reports.
    pub fn stage_originated(&self, envelope: &[u8], at: Timestamp) -> Result<Staged, JournalError> {
        self.stage(originated(envelope, at, None)?)
    }

    /// [`Journal::append_originated_for_request`] without waiting for the
    /// commit (see [`Journal::stage_originated`]).
    ///
    /// # Errors
    /// As [`Journal::append_originated_for_request`], except commit
    /// failures, which the wait reports.
    pub fn stage_originated_for_request(
        &self,
        envelope: &[u8],
        at: Timestamp,
        request_key: &[u8],
        value: &[u8],
    ) -> Result<Staged, JournalError> {
        self.stage(originated_for_request(envelope, at, request_key, value)?)
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
            request: None,
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
            request: None,
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
            request: None,
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
