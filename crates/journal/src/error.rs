//! The journal's error type.

use crate::merkle::ProofError;
use crate::store::StoreError;

/// A journal operation failed; the variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The store failed while doing `step`.
    #[error("{step}")]
    Store {
        /// What the journal was doing.
        step: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// An earlier durable write failed; after a failed fsync the file state is
    /// unknown, so the journal refuses all writes until it is reopened.
    #[error("the journal stopped accepting writes after a failed commit: {0}")]
    Failed(String),
    /// The envelope or event to append is malformed.
    #[error("cannot journal this envelope: {0}")]
    BadEnvelope(&'static str),
    /// A request record's key is empty or longer than
    /// [`RequestRecord::MAX_KEY`](crate::RequestRecord::MAX_KEY) bytes.
    #[error("a request record key must be 1 to 512 bytes")]
    BadRequestKey,
    /// A receipt names an event this journal never originated.
    #[error("the completed event {0} is not in this journal")]
    UnknownCompletedEvent(waymark_types::EventId),
    /// Checkpoints need the agency's signing key and none was configured.
    #[error("no signing key configured: cannot sign a checkpoint")]
    NoSigningKey,
    /// A cosignature does not match a stored checkpoint or does not verify.
    #[error("cosignature rejected: {0}")]
    BadCosignature(String),
    /// A proof was asked for sizes or positions outside the journal.
    #[error("proof request out of range: {0}")]
    OutOfRange(String),
    /// A generated proof failed self-verification (a store bug or damage).
    #[error("self-check of a generated proof failed")]
    ProofSelfCheck(#[source] ProofError),
    /// An export's trailer is signed with the journal's signing key, and
    /// the journal was opened without one.
    #[error("no signing key configured: cannot sign an export trailer")]
    NoExportKey,
    /// Writing an export failed.
    #[error("writing the export")]
    ExportWrite(#[source] std::io::Error),
}

pub(crate) fn store(step: &'static str) -> impl FnOnce(StoreError) -> JournalError {
    move |source| JournalError::Store { step, source }
}
