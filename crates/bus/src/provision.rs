//! Idempotent provisioning of the JetStream streams and durable consumers.
//!
//! Two streams, file storage, limits retention:
//! - [`EVENT_STREAM`] over `waymark.v1.evt.>`: events and receipts.
//! - [`CHECKPOINT_STREAM`] over `waymark.v1.ckpt.>` and `waymark.v1.cosig.>`.
//!
//! Create-or-verify: every agency provisions at start and whenever the broker
//! says a stream is missing (a lost or deleted stream is simply re-created;
//! the outboxes re-send what it held). Concurrent provisioning is safe: a
//! creation that loses the race finds the winner's stream and verifies it.
//! An existing stream whose subjects or storage differ is an error, never
//! silently changed.
//!
//! Under per-agency broker permissions (`waymark keys nats`, the local
//! federation) agencies may only *look up* the two streams: creating one is
//! refused by the broker, because a stream created by a hostile agency could
//! carry a `republish` or `sources` setting that copies everyone's events to
//! it. The provisioning user (the launcher, the operator) creates them with
//! [`provision`]; an agency finding one missing retries until it is back.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};

use waymark_types::AgencyId;

use crate::config::BusConfig;
use crate::error::{BusError, broker};
use crate::subjects;

/// Name of the event stream.
pub const EVENT_STREAM: &str = "WAYMARK_EVENTS";
/// Name of the checkpoint and cosignature stream.
pub const CHECKPOINT_STREAM: &str = "WAYMARK_CHECKPOINTS";

fn stream_config(cfg: &BusConfig, name: &str, subjects: Vec<String>) -> Config {
    Config {
        name: name.to_owned(),
        subjects,
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        num_replicas: cfg.stream_replicas,
        max_age: cfg.stream_max_age,
        duplicate_window: Duration::from_secs(120),
        max_message_size: i32::try_from(cfg.max_message_bytes.saturating_mul(2))
            .unwrap_or(i32::MAX),
        ..Config::default()
    }
}

/// The event stream's configuration.
pub fn event_stream(cfg: &BusConfig) -> Config {
    stream_config(cfg, EVENT_STREAM, vec![subjects::all_events()])
}

/// The checkpoint stream's configuration.
pub fn checkpoint_stream(cfg: &BusConfig) -> Config {
    stream_config(
        cfg,
        CHECKPOINT_STREAM,
        vec![
            subjects::all_checkpoints_stream(),
            subjects::all_cosignatures(),
        ],
    )
}

/// Creates `want` or verifies the existing stream of that name.
///
/// # Errors
/// [`BusError::Provision`] when the broker fails, [`BusError::StreamConflict`]
/// when the existing stream's subjects or storage differ.
pub async fn ensure_stream(js: &Context, want: Config) -> Result<Stream, BusError> {
    let mut last = None;
    for _ in 0..3 {
        match js.get_or_create_stream(want.clone()).await {
            Ok(s) => {
                let have = &s.cached_info().config;
                let mut a = have.subjects.clone();
                let mut b = want.subjects.clone();
                a.sort();
                b.sort();
                if a != b || have.storage != want.storage {
                    return Err(BusError::StreamConflict {
                        stream: want.name.clone(),
                        detail: format!(
                            "subjects {:?} storage {:?}, wanted {:?} {:?}",
                            have.subjects, have.storage, want.subjects, want.storage
                        ),
                    });
                }
                return Ok(s);
            }
            // Lost a creation race, or the broker is restarting: look again.
            Err(e) => last = Some(e),
        }
    }
    Err(BusError::Provision {
        stream: want.name.clone(),
        source: broker(last.expect("three attempts ran")),
    })
}

/// Both streams.
///
/// # Errors
/// As [`ensure_stream`].
pub async fn provision(js: &Context, cfg: &BusConfig) -> Result<(), BusError> {
    ensure_stream(js, event_stream(cfg)).await?;
    ensure_stream(js, checkpoint_stream(cfg)).await?;
    Ok(())
}

/// One durable consumer of an agency: the stream it reads, its name and its
/// filter. The bus creates exactly these, and the broker's per-agency
/// permissions allow exactly these (name *and* filter in the create subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableSpec {
    /// The stream.
    pub stream: &'static str,
    /// The durable name.
    pub name: String,
    /// The filter subject.
    pub filter: String,
}

/// `me`'s inbox consumer: every event addressed to `me`.
pub fn inbox_durable(me: &AgencyId) -> DurableSpec {
    DurableSpec {
        stream: EVENT_STREAM,
        name: format!("inbox-{me}"),
        filter: subjects::inbox_filter(me),
    }
}

/// `me`'s witness consumer: every agency's checkpoints (public).
pub fn witness_durable(me: &AgencyId) -> DurableSpec {
    DurableSpec {
        stream: CHECKPOINT_STREAM,
        name: format!("witness-{me}"),
        filter: subjects::all_checkpoints(),
    }
}

/// `me`'s cosignature consumer: cosignatures of `me`'s checkpoints.
pub fn cosig_durable(me: &AgencyId) -> DurableSpec {
    DurableSpec {
        stream: CHECKPOINT_STREAM,
        name: format!("cosig-{me}"),
        filter: subjects::cosignatures_for(me),
    }
}

/// Every durable consumer `me` uses.
pub fn durables_of(me: &AgencyId) -> [DurableSpec; 3] {
    [inbox_durable(me), witness_durable(me), cosig_durable(me)]
}

/// A durable pull consumer with explicit acks, bound to `stream`.
///
/// # Errors
/// [`BusError::Consumer`].
pub async fn durable(
    stream: &Stream,
    cfg: &BusConfig,
    name: String,
    filter: String,
) -> Result<PullConsumer, BusError> {
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: filter,
        ack_policy: AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_ack_pending: cfg.max_ack_pending,
        deliver_policy: DeliverPolicy::All,
        ..pull::Config::default()
    };
    stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| BusError::Consumer {
            consumer: name,
            source: broker(e),
        })
}
