//! Node configuration: one [`NodeConfig`], loaded in layers.
//!
//! Layers, each overriding the one before: built-in defaults, then the TOML
//! file named by `--config` (or `WAYMARK_CONFIG`), then environment variables
//! `WAYMARK_<SECTION>__<KEY>` (double underscore between section and key, e.g.
//! `WAYMARK_JOURNAL__DATA_DIR`), then command-line flags (`--set KEY=VALUE` and
//! a few shorthands such as `--listen`).
//!
//! Invariants:
//! - Every key lives in exactly one place, the schema in `schema.rs`: its
//!   name, its default (or that it is required) and its check. Unknown keys
//!   are errors in every layer, so a typo never silently falls back to a
//!   default.
//! - [`load`] checks every key and collects *all* problems before returning,
//!   each named by the layer and key that set the bad value. Nothing is bound,
//!   opened or connected while loading (file-existence checks aside), so a bad
//!   configuration stops a node before it touches the network.
//! - Durations are integer milliseconds in every layer (keys end in `_ms`).

mod load;
mod schema;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use waymark_types::{AgencyId, AgencyKind};

pub use load::{ConfigError, ConfigProblem, NodeArgs, Origin, load, load_from};

/// The whole configuration of one agency node. Build it with [`load`]; tests
/// may also construct it directly (see [`NodeConfig::for_tests`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Who this node is.
    pub agency: AgencyConfig,
    /// The gRPC API served to the agency's back-office systems.
    pub grpc: GrpcConfig,
    /// The NATS JetStream connection shared by all agencies.
    pub nats: NatsConfig,
    /// The local hash-chained journal.
    pub journal: JournalConfig,
    /// Key material.
    pub keys: KeysConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
    /// The shutdown protocol's timings.
    pub shutdown: ShutdownConfig,
    /// The federation this agency belongs to.
    pub federation: FederationConfig,
}

/// `[federation]`: the signed manifest naming the member agencies and their
/// keys, the authority trusted to sign it, and the rule set this agency
/// applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The federation manifest (`federation.toml`; its signature is the
    /// `.sig` file beside it). An agency service refuses to start without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_file: Option<PathBuf>,
    /// The federation authority's Ed25519 public key, 64 hex digits: the only
    /// key whose manifest signature this node accepts. Required with
    /// `manifest_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_key: Option<String>,
    /// The rule set this agency records under, `name@version`. Default
    /// `coe-cets197@1`.
    pub rule_set: String,
}

/// `[agency]`: the identity of the agency this node serves. All keys required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    /// The agency's public id, e.g. `bg-police-sofia`.
    pub id: AgencyId,
    /// The agency's kind; a service binary refuses a kind other than its own.
    pub kind: AgencyKind,
    /// ISO 3166-1 alpha-2 code of the agency's country, upper case (`BG`).
    pub country: String,
}

/// `[grpc]`: the gRPC server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address to listen on. Default `127.0.0.1:50051` (loopback only: exposing
    /// the API is an explicit decision). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted request message, in bytes. Default 1 MiB.
    pub max_request_bytes: usize,
    /// Requests handled at once across all connections; the next one is
    /// answered `RESOURCE_EXHAUSTED` at once instead of queueing. Default 256.
    pub max_concurrent_requests: usize,
    /// Deadline for producing a response (for streams: the response headers),
    /// unless the client's `grpc-timeout` is shorter. Default 30 s.
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    /// Server certificate chain (PEM). With `tls_key_file` and
    /// `tls_client_ca_file` (all three or none), the server speaks only TLS
    /// (1.3 or 1.2, rustls) and requires a client certificate issued by the
    /// client CA. Unset: plaintext, for loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) that issue the back-office systems' client
    /// certificates; a client without such a certificate is refused during
    /// the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
}

/// `[nats]`: the connection to NATS JetStream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://` or `tls://`). Default `["nats://127.0.0.1:4222"]`.
    pub urls: Vec<String>,
    /// NATS credentials file (`.creds`: user JWT and nkey seed). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// NATS nkey seed file (`SU...`, one line, mode 0600) of this agency's
    /// broker user: the broker lets it publish only under its own sender
    /// token and read only its own consumers (see `waymark keys nats`).
    /// Optional; an alternative to `credentials_file` for servers that list
    /// nkey users in their config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey_seed_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the server with. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; requires `tls_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; requires `tls_cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// JetStream stream carrying the events. Default `WAYMARK`.
    pub stream: String,
    /// Copies the agency keeps of each stream it creates (1, or 3 on a
    /// three-node cluster). Default 1.
    pub stream_replicas: usize,
    /// Most events the relay packs into one broker message for one
    /// recipient (an `EventBatch`, so the broker stores and syncs one
    /// message instead of many). Default 64; 1 sends every event alone, as
    /// versions before batches did: set it to 1 while any agency of the
    /// federation still runs such a version.
    pub batch_max_events: usize,
}

/// `[journal]`: the local journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Directory holding the journal. Required: there is deliberately no
    /// default, so a journal never lands in whatever directory a node was
    /// started from.
    pub data_dir: PathBuf,
    /// Sign a checkpoint after this many new entries. Default 1000.
    pub checkpoint_every_entries: u64,
    /// ... or after this long with new entries, whichever comes first.
    /// Default 60 s.
    #[serde(rename = "checkpoint_interval_ms", with = "millis")]
    pub checkpoint_interval: Duration,
    /// The journal index's page cache, in bytes. Default 16 MiB (sled uses
    /// a few times this; see the journal's `SledConfig`).
    pub cache_capacity_bytes: u64,
}

/// `[keys]`: key material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The agency's Ed25519 signing key file. Required; must exist.
    pub signing_key_file: PathBuf,
    /// The agency's X25519 encryption key file (`waymark keys`): opens the
    /// personal data other agencies seal to it. Optional; without it the
    /// agency can send but not receive personal data (events carrying some
    /// are quarantined with reason `sealed_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_file: Option<PathBuf>,
    /// Earlier encryption key files, kept after a rotation only to open
    /// personal data sealed to them while it was in transit; nothing new is
    /// sealed to a retired key (senders use the manifest's current one).
    /// Destroy each once nothing sealed to it can still arrive (the
    /// stream's `max_age`). Default empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_encryption_key_files: Vec<PathBuf>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[telemetry]`: logs, traces and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`RUST_LOG` syntax). Default `info`.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint (`http://host:4317`). Traces are exported
    /// only when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Address for the Prometheus `/metrics` endpoint; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `[shutdown]`: the shutdown protocol (see [`crate::Shutdown`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long health reports NOT_SERVING while the node still accepts
    /// connections, so load balancers stop sending traffic before the listener
    /// closes. Default 0; set it to your balancer's probe interval.
    #[serde(rename = "drain_delay_ms", with = "millis")]
    pub drain_delay: Duration,
    /// Budget for everything after the drain delay: in-flight requests,
    /// shutdown hooks and tracked tasks. What is still running after it is
    /// abandoned and reported. Default 20 s.
    #[serde(rename = "grace_period_ms", with = "millis")]
    pub grace_period: Duration,
}

impl NodeConfig {
    /// Every key at its built-in default, with the required identity, journal
    /// and key paths given: what a launcher writes out as a node's file.
    pub fn with_defaults(
        id: AgencyId,
        kind: AgencyKind,
        country: &str,
        data_dir: PathBuf,
        signing_key_file: PathBuf,
    ) -> Self {
        let mut c = schema::defaults_only();
        c.agency.id = id;
        c.agency.kind = kind;
        c.agency.country = country.to_owned();
        c.journal.data_dir = data_dir;
        c.keys.signing_key_file = signing_key_file;
        c
    }

    /// A valid configuration for in-process tests: agency `test-<kind>`,
    /// gRPC on `127.0.0.1:0`, journal and key file under `dir` (the key file
    /// is not created), every other key at its default, grace period 5 s.
    pub fn for_tests(kind: AgencyKind, dir: &std::path::Path) -> Self {
        let mut c = Self::with_defaults(
            AgencyId::new(&format!("test-{kind}")).expect("valid test agency id"),
            kind,
            "",
            dir.join("journal"),
            dir.join("signing.key"),
        );
        c.grpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.shutdown.grace_period = Duration::from_secs(5);
        c
    }
}

/// Serde helper: a [`Duration`] as integer milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
