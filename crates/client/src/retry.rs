//! When and how long to wait before trying a call again.
//!
//! Only transient failures are retried ([`Error::is_transient`]:
//! `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`), with capped
//! exponential backoff and jitter. Writes keep their idempotency key across
//! attempts, so the agency records the action once however often it is
//! tried. A refusal (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, ...) is
//! returned at once.

use std::time::Duration;

use rand::Rng;

use crate::Error;

/// Capped exponential backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Pause before the second attempt.
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// Growth of the pause per attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 8 attempts, pauses of 100 ms doubling up to 5 s (about 15 s in all).
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The pause after failed attempt number `attempt` (1-based): the
    /// capped exponential value, less up to half of it at random (so many
    /// clients do not retry in step), and never shorter than what the agency
    /// asked for in `RetryInfo`.
    pub fn backoff(&self, attempt: u32, error: Option<&Error>) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = raw.min(self.max_backoff.as_secs_f64());
        let jittered = capped * rand::thread_rng().gen_range(0.5..=1.0);
        let pause = Duration::from_secs_f64(jittered);
        match error {
            Some(Error::ResourceExhausted {
                retry_after: Some(d),
                ..
            }) => pause.max(*d),
            _ => pause,
        }
    }

    /// Whether to try again after failed attempt number `attempt` with `e`.
    pub fn should_retry(&self, attempt: u32, e: &Error) -> bool {
        attempt < self.max_attempts && e.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let d = p.backoff(attempt, None);
            assert!(d <= p.max_backoff, "{attempt}: {d:?}");
        }
        let first = p.backoff(1, None);
        assert!(first >= p.initial_backoff / 2 && first <= p.initial_backoff);
        let late = p.backoff(12, None);
        assert!(late >= p.max_backoff / 2);
        let asked = Error::ResourceExhausted {
            message: "busy".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(p.backoff(1, Some(&asked)) >= Duration::from_secs(3));
    }

    #[test]
    fn refusals_are_never_retried() {
        let p = RetryPolicy::default();
        let refused = Error::FailedPrecondition {
            rule: "consent.withdrawn".into(),
            message: "withdrawn".into(),
            rule_set: None,
        };
        assert!(!p.should_retry(1, &refused));
        let down = Error::Unavailable {
            message: "down".into(),
        };
        assert!(p.should_retry(1, &down));
        assert!(!p.should_retry(p.max_attempts, &down));
        assert!(!RetryPolicy::never().should_retry(1, &down));
    }
}
