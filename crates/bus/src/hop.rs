//! Blocking work on the latency path without a thread hand-off.
//!
//! A journal commit (write, fdatasync, index update) blocks for a few
//! hundred microseconds. Sent to tokio's blocking pool, it costs two thread
//! hand-offs, to the pool and back, each a wake-up of a sleeping thread:
//! on a busy two-core host 30–100 µs apiece, measured on the path of one
//! event (benchmark P2), where a lone event always leads its own commit.
//! [`blocking_here`] runs it on the calling worker thread instead
//! (`block_in_place`: the runtime hands this worker's other tasks to
//! another thread, off the caller's path) and falls back to the pool where
//! that is not allowed (a current-thread runtime, as in tests).

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which blocks, for the calling task: on this thread in a
/// multi-thread runtime, else on the blocking pool. Either way it runs to
/// its end even if the caller goes away (a panic in `f` propagates in the
/// first case, and is the error in the second).
///
/// # Errors
/// The blocking-pool task panicked or was cancelled at shutdown.
pub(crate) async fn blocking_here<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let here =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if here {
        Ok(tokio::task::block_in_place(f))
    } else {
        tokio::task::spawn_blocking(f).await
    }
}
