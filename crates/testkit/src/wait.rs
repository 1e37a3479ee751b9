//! Polling instead of sleeping.
//!
//! Tests never sleep for a fixed time; they wait for a condition with
//! [`wait_for`] (async) or [`wait_for_sync`]. Both check at once, then again
//! with a short growing backoff (5 ms doubling to 100 ms), and give up with
//! [`Error::Timeout`] naming the condition and the time spent. The condition
//! is always checked at least once, and once more at the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Error, Result};

const FIRST_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_millis(100);

/// The delays between checks: 5 ms doubling up to 100 ms, never past the deadline.
#[derive(Debug)]
pub(crate) struct Backoff {
    start: Instant,
    deadline: Instant,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(timeout: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            deadline: start + timeout,
            next: FIRST_DELAY,
            attempts: 0,
        }
    }

    /// Counts a failed check; returns how long to wait before the next one,
    /// or `None` when the deadline has passed.
    pub(crate) fn after_failure(&mut self) -> Option<Duration> {
        self.attempts += 1;
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let delay = self.next.min(left);
        self.next = (self.next * 2).min(MAX_DELAY);
        Some(delay)
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn timeout_error(&self, description: &str) -> Error {
        Error::Timeout {
            description: description.to_owned(),
            elapsed: self.start.elapsed(),
            attempts: self.attempts,
        }
    }
}

/// Waits until `condition` resolves to `true`, polling with a short backoff.
/// A single check that is still pending at the deadline is abandoned.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> waymark_testkit::Result<()> {
/// use std::time::Duration;
/// waymark_testkit::wait_for(Duration::from_secs(10), "client reconnected", || async {
///     client.connection_state() == async_nats::connection::State::Connected
/// })
/// .await
/// # }
/// ```
///
/// # Errors
/// [`Error::Timeout`] with `description`, the elapsed time and the number of checks.
pub async fn wait_for<F, Fut>(timeout: Duration, description: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut backoff = Backoff::new(timeout);
    let deadline = tokio::time::Instant::from_std(backoff.deadline());
    loop {
        // The first check always runs to completion so that a zero timeout
        // still checks once; later checks are bounded by the deadline.
        let met = if backoff.attempts == 0 {
            condition().await
        } else {
            tokio::time::timeout_at(deadline, condition())
                .await
                .unwrap_or(false)
        };
        if met {
            return Ok(());
        }
        match backoff.after_failure() {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return Err(backoff.timeout_error(description)),
        }
    }
}

/// Blocking twin of [`wait_for`], for synchronous code and tests.
///
/// # Errors
/// [`Error::Timeout`] with `description`, the elapsed time and the number of checks.
pub fn wait_for_sync<F>(timeout: Duration, description: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> bool,
{
    let mut backoff = Backoff::new(timeout);
    loop {
        if condition() {
            return Ok(());
        }
        match backoff.after_failure() {
            Some(delay) => std::thread::sleep(delay),
            None => return Err(backoff.timeout_error(description)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn async_times_out_with_its_description() {
        let started = Instant::now();
        let err = wait_for(
            Duration::from_millis(150),
            "the moon turns blue",
            || async { false },
        )
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        let message = err.to_string();
        assert!(message.contains("the moon turns blue"), "{message}");
        assert!(message.contains("timed out after"), "{message}");
        match err {
            Error::Timeout {
                elapsed, attempts, ..
            } => {
                assert!(elapsed >= Duration::from_millis(150));
                assert!(attempts >= 3, "polled only {attempts} times");
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[tokio::test]
    async fn async_abandons_a_check_that_hangs() {
        let started = Instant::now();
        let calls = AtomicU32::new(0);
        let err = wait_for(Duration::from_millis(100), "a hanging check", || async {
            if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                std::future::pending::<()>().await;
            }
            false
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains("a hanging check"));
    }

    #[tokio::test]
    async fn async_returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        wait_for(Duration::from_secs(5), "third check succeeds", || async {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn sync_times_out_with_its_description() {
        let err = wait_for_sync(Duration::from_millis(50), "pigs fly", || false).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("pigs fly") && message.contains("timed out after"),
            "{message}"
        );
    }

    #[test]
    fn zero_timeout_still_checks_once() {
        let mut calls = 0;
        wait_for_sync(Duration::ZERO, "immediately true", || {
            calls += 1;
            true
        })
        .unwrap();
        assert_eq!(calls, 1);
    }
}
