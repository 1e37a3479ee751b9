//! What verification can find wrong.

use waymark_crypto::{KeyRingError, VerifyError};

/// The first bad position of a journal or export, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {record}{}: {problem}", seq.map(|s| format!(" (entry {s})")).unwrap_or_default())]
pub struct VerifyFailure {
    /// 0-based record index in the export (0 = header). For a broken chain
    /// link this is the record whose `prev_hash` no longer matches, i.e. the
    /// entry right after the altered one.
    pub record: u64,
    /// The last entry seq reached when the problem was found.
    pub seq: Option<u64>,
    /// What is wrong.
    #[source]
    pub problem: VerifyProblem,
}

/// What is wrong at a [`VerifyFailure`]'s position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyProblem {
    /// The file does not start with `WMJRNL01`.
    #[error("not a Waymark journal export (bad magic)")]
    BadMagic,
    /// The file ends before its trailer.
    #[error("the export ends before its trailer (truncated)")]
    Truncated,
    /// Reading failed.
    #[error("read error: {0}")]
    Io(String),
    /// The store failed (live verification or import).
    #[error("store error: {0}")]
    Store(String),
    /// A record's length prefix is absurd.
    #[error("record claims {0} bytes")]
    RecordTooLarge(u64),
    /// A record does not decode.
    #[error("record does not decode as ExportRecord")]
    RecordUndecodable,
    /// A record is not in the canonical encoding the exporter writes
    /// (a redundant varint byte, an unknown, repeated or re-encoded field):
    /// bytes that no check would cover.
    #[error("record is not in canonical encoding")]
    RecordNotCanonical,
    /// A record has no content.
    #[error("record is empty")]
    EmptyRecord,
    /// The first record is not the header.
    #[error("the first record is not the header")]
    HeaderMissing,
    /// A second header.
    #[error("a header after the first record")]
    HeaderNotFirst,
    /// Unknown format version.
    #[error("unsupported export format version {0}")]
    UnsupportedVersion(u32),
    /// `first_seq` is not 1.
    #[error("partial exports (first_seq {0}) are not supported by this verifier")]
    PartialExport(u64),
    /// The header's agency id is malformed.
    #[error("header agency id is malformed")]
    BadAgencyId,
    /// The header's keys are malformed.
    #[error("header keys: {0}")]
    BadHeaderKeys(KeyRingError),
    /// The header has no `exported_at` (the time the trailer was signed).
    #[error("header has no exported_at")]
    HeaderMissingExportTime,
    /// The header is not the one the signed trailer's `header_hash` names:
    /// it was altered. Reported at record 0.
    #[error("the header does not match the trailer's header_hash (the header was altered)")]
    HeaderHashMismatch,
    /// An entry does not decode as JournalEntry.
    #[error("entry does not decode as JournalEntry")]
    EntryUndecodable,
    /// Sequence numbers are not consecutive.
    #[error("entry seq {found} where {expected} was expected")]
    SeqOutOfOrder {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The entry's `prev_hash` is not the previous entry's hash.
    #[error(
        "prev_hash does not match the previous entry's hash (the previous entry or this link was altered)"
    )]
    PrevHashMismatch,
    /// `recorded_at` missing.
    #[error("entry has no recorded_at")]
    EntryMissingTime,
    /// Entry kind unspecified or unknown.
    #[error("entry kind is unspecified or unknown")]
    KindUnspecified,
    /// The entry's case id is malformed.
    #[error("entry case_id is malformed")]
    BadCaseId,
    /// The entry's case id differs from its event's.
    #[error("entry case_id differs from its event's case_id")]
    CaseMismatch,
    /// The entry's envelope or event does not decode.
    #[error("entry envelope or event does not decode")]
    EnvelopeUndecodable,
    /// An event envelope's signature failed.
    #[error("event envelope signature: {0}")]
    EnvelopeSignature(VerifyError),
    /// A checkpoint does not decode.
    #[error("checkpoint does not decode")]
    CheckpointUndecodable,
    /// A checkpoint is for another agency.
    #[error("checkpoint names another agency")]
    CheckpointAgency,
    /// A checkpoint is not right after the entry it covers.
    #[error("checkpoint of size {size} placed after entry {after_entry}")]
    CheckpointMisplaced {
        /// The checkpoint's size.
        size: u64,
        /// The entry it follows.
        after_entry: u64,
    },
    /// The checkpoint's root is not the root of the entries read.
    #[error("checkpoint root does not match the entries")]
    CheckpointRootMismatch,
    /// The checkpoint's signature failed.
    #[error("checkpoint signature: {0}")]
    CheckpointSignature(VerifyError),
    /// A cosignature does not decode.
    #[error("cosignature does not decode")]
    CosignatureUndecodable,
    /// A cosignature before any checkpoint.
    #[error("cosignature without a preceding checkpoint")]
    CosignatureWithoutCheckpoint,
    /// A cosignature names another checkpoint.
    #[error("cosignature does not match the checkpoint before it")]
    CosignatureMismatch,
    /// Cosignatures of one checkpoint must come in strictly ascending
    /// witness order (so one per witness).
    #[error("cosignature out of witness order, or a second one by the same witness")]
    CosignatureOrder,
    /// A cosignature's signature failed.
    #[error("cosignature signature: {0}")]
    CosignatureSignature(VerifyError),
    /// Trailer entry count is wrong.
    #[error("trailer says {trailer} entries, file has {found}")]
    TrailerCountMismatch {
        /// The trailer's count.
        trailer: u64,
        /// Entries read.
        found: u64,
    },
    /// Trailer last hash is wrong.
    #[error("trailer last_entry_hash does not match the last entry")]
    TrailerHashMismatch,
    /// The trailer record's payload is not an ExportTrailer.
    #[error("trailer does not decode")]
    TrailerUndecodable,
    /// The trailer's signature failed with the header's keys at
    /// `exported_at`.
    #[error("trailer signature: {0}")]
    TrailerSignature(VerifyError),
    /// Trailer checkpoint count is wrong: a checkpoint was removed or added.
    #[error("trailer says {trailer} checkpoints, file has {found}")]
    TrailerCheckpointCountMismatch {
        /// The trailer's count.
        trailer: u64,
        /// Checkpoints read.
        found: u64,
    },
    /// Trailer cosignature count is wrong: a cosignature was removed or added.
    #[error("trailer says {trailer} cosignatures, file has {found}")]
    TrailerCosignatureCountMismatch {
        /// The trailer's count.
        trailer: u64,
        /// Cosignatures read.
        found: u64,
    },
    /// Data after the trailer.
    #[error("record after the trailer")]
    RecordAfterTrailer,
}
