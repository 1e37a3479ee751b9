//! The bus's errors; each variant names the step that failed.

use waymark_journal::JournalError;
use waymark_policy::WireError;

/// A boxed broker error (async-nats has one error type per call).
pub type BrokerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`crate::Bus::send`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The event is not well formed (every violated field is listed).
    #[error("the event is malformed")]
    Malformed(#[source] WireError),
    /// The event is not this agency's to sign (sender id or kind differ).
    #[error("the event's sender is not this agency: {0}")]
    NotOurs(String),
    /// The rules refuse it (for a forward: or its inner envelope does not
    /// verify); nothing was journaled or published.
    #[error("the rules refuse this event: {0}")]
    Refused(String),
    /// The journal append failed; the event was not recorded.
    #[error("journaling the event")]
    Journal(#[source] JournalError),
    /// The blocking journal task died (a panic).
    #[error("the journal task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A failure of the bus's broker-facing steps.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Creating or checking a stream failed.
    #[error("provisioning stream {stream}")]
    Provision {
        /// The stream.
        stream: String,
        /// The broker's error.
        #[source]
        source: BrokerError,
    },
    /// An existing stream's configuration conflicts with ours.
    #[error("stream {stream} exists with a conflicting configuration: {detail}")]
    StreamConflict {
        /// The stream.
        stream: String,
        /// What differs.
        detail: String,
    },
    /// Creating or binding a durable consumer failed.
    #[error("creating consumer {consumer}")]
    Consumer {
        /// The durable name.
        consumer: String,
        /// The broker's error.
        #[source]
        source: BrokerError,
    },
    /// Reading messages from a consumer failed.
    #[error("reading messages of consumer {consumer}")]
    Messages {
        /// The durable name.
        consumer: String,
        /// The broker's error.
        #[source]
        source: BrokerError,
    },
    /// A journal step failed.
    #[error("{step}")]
    Journal {
        /// What the bus was doing.
        step: &'static str,
        /// The journal's error.
        #[source]
        source: JournalError,
    },
    /// A blocking task died.
    #[error("a blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

pub(crate) fn broker<E: std::error::Error + Send + Sync + 'static>(e: E) -> BrokerError {
    Box::new(e)
}
