//! Bus settings.

use std::time::Duration;

use waymark_types::{AgencyId, AgencyKind};

/// Settings of one agency's bus. [`BusConfig::new`] gives production defaults;
/// tests shorten the timers.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// This agency.
    pub agency: AgencyId,
    /// This agency's kind.
    pub kind: AgencyKind,
    /// Replicas of the JetStream streams (1 on one machine, 3 in a cluster).
    pub stream_replicas: usize,
    /// How long the broker keeps messages. Delivery does not depend on it: the
    /// outbox re-sends until a receipt arrives.
    pub stream_max_age: Duration,
    /// Largest accepted bus message; larger ones are quarantined as `oversized`.
    pub max_message_bytes: usize,
    /// Re-send an event when its receipt has not arrived after this long.
    pub receipt_timeout: Duration,
    /// First and last delay of the exponential backoff after a publish or
    /// broker error.
    pub backoff: (Duration, Duration),
    /// Messages the inbox handles per journal group commit.
    pub inbox_batch: usize,
    /// The inbox consumer's `max_ack_pending` (bounds unacknowledged work).
    pub max_ack_pending: i64,
    /// The inbox consumer's `ack_wait`: redelivery after this long unacked.
    pub ack_wait: Duration,
    /// Most outbox items the relay holds in memory at once.
    pub relay_window: usize,
    /// Most messages the relay publishes before awaiting their PubAcks.
    pub publish_batch: usize,
    /// Most events the relay packs into one broker message for one
    /// recipient ([`crate::batch`]); 1 publishes every event alone (for
    /// federations where an agency still runs a version without batches).
    pub batch_max_events: usize,
    /// How long the relay waits for the PubAcks of one batch; a message
    /// without one stays queued and is published again (same `Nats-Msg-Id`).
    pub publish_ack_timeout: Duration,
    /// How often the witness task asks the journal for a new checkpoint.
    pub checkpoint_interval: Duration,
    /// Largest accepted clock skew: events dated further in the future are
    /// quarantined as `policy_violation`.
    pub max_clock_skew: Duration,
    /// Case states cached for policy checks before the cache is reset.
    pub case_cache: usize,
    /// How often journal-wide metrics (size, checkpoint lag) are sampled.
    pub metrics_interval: Duration,
}

impl BusConfig {
    /// Production defaults for `agency` of `kind`.
    pub fn new(agency: AgencyId, kind: AgencyKind) -> Self {
        Self {
            agency,
            kind,
            stream_replicas: 1,
            stream_max_age: Duration::from_secs(14 * 86_400),
            max_message_bytes: 1 << 20,
            receipt_timeout: Duration::from_secs(30),
            backoff: (Duration::from_millis(50), Duration::from_secs(5)),
            inbox_batch: 256,
            max_ack_pending: 1024,
            ack_wait: Duration::from_secs(30),
            relay_window: 20_000,
            publish_batch: 512,
            batch_max_events: 64,
            publish_ack_timeout: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(300),
            case_cache: 10_000,
            metrics_interval: Duration::from_secs(5),
        }
    }
}

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new((min, max): (Duration, Duration)) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; doubles the next one.
    pub(crate) fn fail(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}
