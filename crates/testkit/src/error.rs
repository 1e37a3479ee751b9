//! The one error type of the harness. Each variant names the step that failed;
//! causes sit in `#[source]`, and process failures carry the tail of the
//! server's log so a red test explains itself without a rerun.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while finding, starting, stopping or talking
/// to a test `nats-server`, or while waiting for a condition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable `nats-server` (>= [`crate::MIN_VERSION`]) was found.
    #[error(
        "nats-server {}.{}+ not found (looked in {looked_in}){notes}; install the pinned one with: \
         bash .ci/install-nats (that is: bash {})",
        min.major,
        min.minor,
        script.display()
    )]
    NotFound {
        /// The places searched, in order, e.g. `$WAYMARK_NATS_SERVER, PATH, /repo/.tools/bin`.
        looked_in: String,
        /// Why candidates that exist were rejected, already formatted (`""` or `"; skipped: ..."`).
        notes: String,
        /// The minimum accepted version.
        min: crate::Version,
        /// Absolute path of `.ci/install-nats`.
        script: PathBuf,
    },

    /// A directory or file of the harness could not be created or written.
    #[error("could not create or write {}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The `nats-server` process could not be spawned.
    #[error("could not spawn {}", binary.display())]
    Spawn {
        /// The binary that was run.
        binary: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The server process exited before it became ready.
    #[error("nats-server exited ({status}) before it was ready; {} ends with:\n{tail}", log.display())]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// The server did not become ready in time (it has been killed).
    #[error("nats-server not ready after {timeout:?} ({reason}); {} ends with:\n{tail}", log.display())]
    NotReady {
        /// The readiness timeout.
        timeout: Duration,
        /// The last readiness check that failed.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// Signalling or reaping the server process failed.
    #[error("could not signal or reap nats-server pid {pid}")]
    Process {
        /// The process id.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The server ignored a graceful stop; it was then killed with SIGKILL.
    #[error("nats-server pid {pid} did not exit within {timeout:?} of SIGTERM, so it was killed")]
    StopTimeout {
        /// The process id.
        pid: u32,
        /// How long the harness waited.
        timeout: Duration,
    },

    /// An operation needed a running server, and it was stopped or killed.
    #[error("nats-server is not running (call restart first)")]
    NotRunning,

    /// A monitoring endpoint request failed.
    #[error("monitoring request GET {path} failed: {reason}")]
    Monitor {
        /// The requested path.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// A client could not connect to the server.
    #[error("could not connect a client to {url}")]
    Connect {
        /// The server URL.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::ConnectError,
    },

    /// [`crate::wait_for`] or [`crate::wait_for_sync`] gave up.
    #[error("timed out after {elapsed:?} ({attempts} checks) waiting for: {description}")]
    Timeout {
        /// What was awaited, as the caller described it.
        description: String,
        /// Time spent waiting.
        elapsed: Duration,
        /// How many times the condition was checked.
        attempts: u32,
    },
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
