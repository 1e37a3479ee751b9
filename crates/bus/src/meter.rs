//! The bus's Prometheus-style metrics, through the `metrics` facade (a
//! process without a recorder pays almost nothing for them).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `waymark_bus_outbox_depth` | gauge | outbox items not yet delivered (waiting for a publish or a receipt); saturates at `relay_window` |
//! | `waymark_bus_receipts_pending` | gauge | events published and not yet receipted by their recipient |
//! | `waymark_bus_delivery_seconds` | histogram | sender's journal append of an event → the recipient's receipt journaled by the sender |
//! | `waymark_journal_entries` | gauge | entries in this agency's journal |
//! | `waymark_journal_bytes` | gauge | bytes of the journal's files on disk |
//! | `waymark_journal_checkpoint_lag_entries` | gauge | entries not yet covered by a signed checkpoint |
//! | `waymark_journal_checkpoint_age_seconds` | gauge | time since the latest signed checkpoint (-1 before the first) |
//! | `waymark_bus_quarantined_total{reason}` etc. | counter | see [`crate::quarantine`] |
//!
//! Invariants: labels are reason tokens only (the agency id is a global
//! label set by the node); never a case id, event id, subject or any
//! personal data. Hot paths only touch a map entry the send already takes a
//! lock for; journal-wide figures are sampled every `metrics_interval` by a
//! task of their own, off the request path.
//!
//! The delivery latency is measured for events sent by this process: after a
//! restart, events re-sent from the durable outbox are delivered but not
//! timed (their start instant is gone; the journal time would mix clocks).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use prost::Message;
use tokio_util::sync::CancellationToken;
use waymark_crypto::timestamp_from_proto;
use waymark_proto::v1::Checkpoint;
use waymark_types::{EventId, Timestamp};

use crate::Ctx;

/// Most events timed and traced at once; beyond it, sends are still
/// delivered but neither timed nor carrying trace headers.
pub(crate) const MAX_IN_FLIGHT: usize = 100_000;

/// Outbox depth gauge name.
pub(crate) const OUTBOX_DEPTH: &str = "waymark_bus_outbox_depth";
/// Receipts-pending gauge name.
pub(crate) const RECEIPTS_PENDING: &str = "waymark_bus_receipts_pending";
/// Delivery latency histogram name.
pub(crate) const DELIVERY_SECONDS: &str = "waymark_bus_delivery_seconds";
const JOURNAL_ENTRIES: &str = "waymark_journal_entries";
const JOURNAL_BYTES: &str = "waymark_journal_bytes";
const CHECKPOINT_LAG: &str = "waymark_journal_checkpoint_lag_entries";
const CHECKPOINT_AGE: &str = "waymark_journal_checkpoint_age_seconds";

/// An event `send` journaled that has no receipt yet.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// W3C trace headers of the sending span, for the relay to publish.
    pub(crate) trace: HashMap<String, String>,
    /// When its journal append became durable.
    pub(crate) journaled: Instant,
}

impl InFlight {
    pub(crate) fn now(trace: HashMap<String, String>) -> Self {
        Self {
            trace,
            journaled: Instant::now(),
        }
    }
}

/// Records the delivery latency of `events`, whose receipts the inbox just
/// journaled, and forgets them.
pub(crate) fn delivered(ctx: &Ctx, events: &[EventId]) {
    if events.is_empty() {
        return;
    }
    let Ok(mut in_flight) = ctx.in_flight.lock() else {
        return;
    };
    let h = histogram!(DELIVERY_SECONDS);
    for id in events {
        if let Some(f) = in_flight.remove(id) {
            h.record(f.journaled.elapsed().as_secs_f64());
        }
    }
}

/// The relay's view after a round: items not yet delivered and, among them,
/// the published ones waiting for a receipt.
pub(crate) fn relay_state(outbox_depth: usize, receipts_pending: usize) {
    gauge!(OUTBOX_DEPTH).set(outbox_depth as f64);
    gauge!(RECEIPTS_PENDING).set(receipts_pending as f64);
}

/// Describes the metrics, then samples the journal-wide figures every
/// `metrics_interval` until cancelled.
pub(crate) async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    describe();
    let mut tick = tokio::time::interval(ctx.config.metrics_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || sample(&c)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "sampling journal metrics failed"),
            Err(e) => tracing::debug!(error = %e, "journal metrics task failed"),
        }
    }
}

fn sample(ctx: &Ctx) -> Result<(), waymark_journal::JournalError> {
    let size = ctx.journal.size()?;
    gauge!(JOURNAL_ENTRIES).set(size as f64);
    gauge!(JOURNAL_BYTES).set(dir_bytes(ctx.journal.store().dir(), 2) as f64);
    let latest = ctx
        .journal
        .latest_checkpoint()?
        .and_then(|env| Checkpoint::decode(env.payload.as_slice()).ok());
    let (covered, age) = match latest {
        Some(c) => {
            let at = c
                .time
                .as_ref()
                .map_or(0, |t| timestamp_from_proto(t).millis());
            let age_ms = Timestamp::now().millis().saturating_sub(at).max(0);
            (
                c.size,
                Duration::from_millis(age_ms.unsigned_abs()).as_secs_f64(),
            )
        }
        None => (0, -1.0),
    };
    gauge!(CHECKPOINT_LAG).set(size.saturating_sub(covered) as f64);
    gauge!(CHECKPOINT_AGE).set(age);
    Ok(())
}

/// Total size of the files under `dir`, `depth` levels deep (sled keeps a
/// handful of files and a `blobs` directory).
fn dir_bytes(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(m) if m.is_dir() && depth > 0 => dir_bytes(&e.path(), depth - 1),
            _ => 0,
        })
        .sum()
}

fn describe() {
    describe_gauge!(
        OUTBOX_DEPTH,
        "Outbox items not yet delivered (waiting for a publish or a receipt)"
    );
    describe_gauge!(
        RECEIPTS_PENDING,
        "Events published and not yet receipted by their recipient"
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "From journaling an event to journaling its recipient's receipt"
    );
    describe_gauge!(JOURNAL_ENTRIES, "Entries in this agency's journal");
    describe_gauge!(
        JOURNAL_BYTES,
        metrics::Unit::Bytes,
        "Bytes of the journal's files on disk"
    );
    describe_gauge!(
        CHECKPOINT_LAG,
        "Journal entries not yet covered by a signed checkpoint"
    );
    describe_gauge!(
        CHECKPOINT_AGE,
        metrics::Unit::Seconds,
        "Time since the latest signed checkpoint (-1 before the first)"
    );
    describe_counter!(
        "waymark_bus_quarantined_total",
        "Bus messages journaled as quarantined, by reason"
    );
    describe_counter!(
        "waymark_bus_duplicates_total",
        "Redelivered events recognised by their event id"
    );
    describe_counter!(
        "waymark_bus_equivocations_total",
        "Checkpoints from another agency that contradict an earlier one"
    );
}
