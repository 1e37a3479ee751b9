//! The storage interface the journal is written against.
//!
//! A [`JournalStore`] is a dumb, durable, atomic key-value layout: the
//! [`Journal`](crate::Journal) decides sequence numbers, hashes, Merkle nodes
//! and outbox changes and hands them over as one [`Batch`]; the store makes the
//! whole batch durable at once and serves reads. Any replacement for the sled
//! store must pass [`crate::conformance::run`].

use waymark_types::{AgencyId, CaseId, EventId};

use crate::merkle::Hash;

/// One entry as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the journal, from 1, gapless.
    pub seq: u64,
    /// The JournalEntry encoding, verbatim.
    pub bytes: Vec<u8>,
    /// `SHA-256(0x00 || bytes)`: entry hash and Merkle leaf hash.
    pub hash: Hash,
    /// Interior Merkle nodes completed by this leaf, level 1 upwards: node
    /// `(l, (seq >> l) - 1)` is `nodes[l - 1]`.
    pub nodes: Vec<Hash>,
    /// The case the entry is about, for the per-case index.
    pub case_id: Option<CaseId>,
    /// The event the entry carries, for the event-id (dedup) index.
    pub event_id: Option<EventId>,
}

/// An event waiting for delivery to one recipient, until its receipt arrives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxItem {
    /// Seq of the ORIGINATED entry; the outbox is ordered by it.
    pub seq: u64,
    /// The recipient agency.
    pub recipient: AgencyId,
    /// The event's id (its `Nats-Msg-Id`).
    pub event_id: EventId,
}

/// A signed checkpoint envelope, encoded, with the tree size it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Entries covered.
    pub size: u64,
    /// The encoded checkpoint Envelope, as signed.
    pub envelope: Vec<u8>,
}

/// A witness cosignature over one of this journal's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCosignature {
    /// Size of the checkpoint it cosigns.
    pub size: u64,
    /// The witnessing agency (one cosignature per witness and checkpoint).
    pub witness: AgencyId,
    /// The encoded cosignature Envelope, as received.
    pub envelope: Vec<u8>,
}

/// Everything one group commit changes; applied atomically and durably.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// New entries, in seq order, continuing the journal.
    pub entries: Vec<StoredEntry>,
    /// Outbox items queued by these entries.
    pub outbox_add: Vec<OutboxItem>,
    /// Outbox items completed by receipts in these entries: (seq, recipient).
    pub outbox_remove: Vec<(u64, AgencyId)>,
    /// New checkpoints.
    pub checkpoints: Vec<StoredCheckpoint>,
    /// New cosignatures.
    pub cosignatures: Vec<StoredCosignature>,
    /// Request records of entries in this batch (see [`RequestRecord`]).
    pub requests: Vec<RequestRecord>,
}

/// What a client's request was answered with: an opaque key (for an agency,
/// the RPC and the client's idempotency key), the seq of the entry the
/// request recorded and an opaque value (the agency's request fingerprint).
/// Committed atomically with that entry, so a retry after a crash finds it
/// exactly when the entry exists. Bookkeeping like the outbox: it is kept in
/// the log and the index, never in an entry, and is not evidence (exports
/// do not carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request's key, at most [`RequestRecord::MAX_KEY`] bytes.
    pub key: Vec<u8>,
    /// The seq of the entry the request recorded.
    pub seq: u64,
    /// The caller's value.
    pub value: Vec<u8>,
}

impl RequestRecord {
    /// Longest key accepted.
    pub const MAX_KEY: usize = 512;
}

impl Batch {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.outbox_add.is_empty()
            && self.outbox_remove.is_empty()
            && self.checkpoints.is_empty()
            && self.cosignatures.is_empty()
            && self.requests.is_empty()
    }
}

/// A storage failure, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File-system I/O failed.
    #[error("{step}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The sled index failed.
    #[error("{step}")]
    Sled {
        /// What was being done.
        step: &'static str,
        /// The sled error.
        #[source]
        source: sled::Error,
    },
    /// Stored data is not what was written: corruption or a foreign file.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A batch does not continue the journal (a caller bug).
    #[error("batch rejected: {0}")]
    BadBatch(String),
}

/// Durable storage for one journal.
///
/// Contract (checked by [`crate::conformance::run`]):
/// - [`commit`](JournalStore::commit) returns only when the whole batch is on
///   stable storage (fsync/fdatasync), and after a crash either all of a batch
///   is visible or none of it.
/// - Reads see exactly the committed batches, in order.
/// - Entries are gapless from 1; a batch whose first entry is not `size + 1`
///   is rejected with [`StoreError::BadBatch`].
pub trait JournalStore: Send + Sync {
    /// Makes a batch durable and visible, atomically.
    ///
    /// # Errors
    /// Any I/O failure; the store must then be reopened (a failed fsync leaves
    /// the file state unknown).
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;
    /// [`commit`](JournalStore::commit) in two visible steps: calls `durable`
    /// once the batch is on stable storage and before it is visible, then
    /// makes it visible and returns. A store may start another commit's
    /// durable write as soon as `durable` has run (pipelining the next write
    /// with this batch's index update), but must make batches visible in the
    /// order they became durable, and after a failed commit must fail every
    /// later one. The default commits, then calls `durable`.
    ///
    /// # Errors
    /// As [`commit`](JournalStore::commit).
    fn commit_pipelined(&self, batch: &Batch, durable: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.commit(batch)?;
        durable();
        Ok(())
    }
    /// Number of entries.
    ///
    /// # Errors
    /// A read failure.
    fn size(&self) -> Result<u64, StoreError>;
    /// Entry `seq` (bytes and hashes).
    ///
    /// # Errors
    /// A read failure or corrupt record.
    fn entry(&self, seq: u64) -> Result<Option<StoredEntry>, StoreError>;
    /// Merkle node `(level, index)` of a perfect subtree wholly inside the
    /// journal (level 0 = entry hashes).
    ///
    /// # Errors
    /// A read failure, or a missing node ([`StoreError::Corrupt`]).
    fn node(&self, level: u32, index: u64) -> Result<Hash, StoreError>;
    /// Seqs of the entries of a case, ascending, starting after `after`.
    ///
    /// # Errors
    /// A read failure.
    fn case_seqs(&self, case: &CaseId, after: u64, limit: usize) -> Result<Vec<u64>, StoreError>;
    /// Seqs of the entries about no case (witnessed checkpoints, capacity,
    /// quarantined input), ascending, starting after `after`. The default
    /// scans every entry; a store should keep an index (the sled store
    /// does), because agencies read these at every start.
    ///
    /// # Errors
    /// A read failure.
    fn uncased_seqs(&self, after: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let size = self.size()?;
        let mut seq = after;
        while seq < size && out.len() < limit {
            seq += 1;
            if self.entry(seq)?.is_some_and(|e| e.case_id.is_none()) {
                out.push(seq);
            }
        }
        Ok(out)
    }
    /// Seq of the entry carrying `event`, if any.
    ///
    /// # Errors
    /// A read failure.
    fn event_seq(&self, event: &EventId) -> Result<Option<u64>, StoreError>;

    /// The committed request record under `key`, if any.
    ///
    /// # Errors
    /// A read failure or a malformed record.
    fn request_record(&self, key: &[u8]) -> Result<Option<RequestRecord>, StoreError>;
    /// Outbox items with seq > `after`, in seq order.
    ///
    /// # Errors
    /// A read failure.
    fn outbox(&self, after: u64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;
    /// Whether the outbox holds (seq, recipient).
    ///
    /// # Errors
    /// A read failure.
    fn outbox_contains(&self, seq: u64, recipient: &AgencyId) -> Result<bool, StoreError>;
    /// Checkpoints with size >= `from`, ascending.
    ///
    /// # Errors
    /// A read failure.
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<StoredCheckpoint>, StoreError>;
    /// The checkpoint with the largest size.
    ///
    /// # Errors
    /// A read failure.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Cosignatures of the checkpoint of `size`, ordered by witness.
    ///
    /// # Errors
    /// A read failure.
    fn cosignatures(&self, size: u64) -> Result<Vec<StoredCosignature>, StoreError>;
}
