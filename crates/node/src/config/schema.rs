//! The configuration schema: every key, its default and its check, in one
//! table. `load.rs` walks the layers; this file says what a valid value is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use toml::Value;
use waymark_types::{AgencyId, AgencyKind};

use super::{
    AgencyConfig, FederationConfig, GrpcConfig, JournalConfig, KeysConfig, LogFormat, NatsConfig,
    NodeConfig, ShutdownConfig, TelemetryConfig,
};

/// How a string from the environment or a flag becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Taken as it is.
    Str,
    /// A non-negative integer.
    Int,
    /// Comma-separated strings.
    List,
}

/// Whether a key has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Must be set by some layer.
    Required,
    /// Has a default (see [`defaults_only`]) or may stay unset.
    Defaulted,
}

/// Checks one value; the error is the message shown after the key.
type Check = fn(&Value) -> Result<(), String>;

/// One configuration key.
#[derive(Debug)]
pub(super) struct Key {
    /// Dotted path, `section.key`.
    pub(super) path: &'static str,
    pub(super) kind: Kind,
    pub(super) need: Need,
    pub(super) check: Check,
}

const fn key(path: &'static str, kind: Kind, need: Need, check: Check) -> Key {
    Key {
        path,
        kind,
        need,
        check,
    }
}

use Kind::{Int, List, Str};
use Need::{Defaulted, Required};

const MIB: i64 = 1024 * 1024;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Every key of [`NodeConfig`]. A unit test checks it against the serde shape.
pub(super) const KEYS: &[Key] = &[
    key("agency.id", Str, Required, token::<AgencyId>),
    key("agency.kind", Str, Required, token::<AgencyKind>),
    key("agency.country", Str, Required, country),
    key("grpc.listen", Str, Defaulted, |v| {
        parsed::<SocketAddr>(v, "socket address")
    }),
    key(
        "grpc.max_request_bytes",
        Int,
        Defaulted,
        int::<1024, { 64 * MIB }>,
    ),
    key(
        "grpc.max_concurrent_requests",
        Int,
        Defaulted,
        int::<1, 100_000>,
    ),
    key("grpc.request_timeout_ms", Int, Defaulted, int::<1, DAY_MS>),
    key("grpc.tls_cert_file", Str, Defaulted, existing_file),
    key("grpc.tls_key_file", Str, Defaulted, secret_file),
    key("grpc.tls_client_ca_file", Str, Defaulted, existing_file),
    key("nats.urls", List, Defaulted, nats_urls),
    key("nats.credentials_file", Str, Defaulted, existing_file),
    key("nats.nkey_seed_file", Str, Defaulted, secret_file),
    key("nats.tls_ca_file", Str, Defaulted, existing_file),
    key("nats.tls_cert_file", Str, Defaulted, existing_file),
    key("nats.tls_key_file", Str, Defaulted, existing_file),
    key("nats.stream", Str, Defaulted, stream_name),
    key("nats.stream_replicas", Int, Defaulted, int::<1, 5>),
    key("nats.batch_max_events", Int, Defaulted, int::<1, 1024>),
    key("journal.data_dir", Str, Required, non_empty_path),
    key(
        "journal.checkpoint_every_entries",
        Int,
        Defaulted,
        int::<1, 1_000_000_000>,
    ),
    key(
        "journal.checkpoint_interval_ms",
        Int,
        Defaulted,
        int::<10, DAY_MS>,
    ),
    key(
        "journal.cache_capacity_bytes",
        Int,
        Defaulted,
        int::<{ MIB }, { 1 << 40 }>,
    ),
    key("keys.signing_key_file", Str, Required, existing_file),
    key("keys.encryption_key_file", Str, Defaulted, secret_file),
    key(
        "keys.retired_encryption_key_files",
        List,
        Defaulted,
        secret_files,
    ),
    key("telemetry.log_format", Str, Defaulted, log_format),
    key("telemetry.log_filter", Str, Defaulted, log_filter),
    key("telemetry.otlp_endpoint", Str, Defaulted, otlp_endpoint),
    key("telemetry.metrics_listen", Str, Defaulted, |v| {
        parsed::<SocketAddr>(v, "socket address")
    }),
    key("shutdown.drain_delay_ms", Int, Defaulted, int::<0, 600_000>),
    key(
        "shutdown.grace_period_ms",
        Int,
        Defaulted,
        int::<0, 3_600_000>,
    ),
    key("federation.manifest_file", Str, Defaulted, existing_file),
    key("federation.authority_key", Str, Defaulted, hex_key),
    key("federation.rule_set", Str, Defaulted, rule_set_ref),
];

/// Looks a key up by its dotted path.
pub(super) fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// The section names, in schema order.
pub(super) fn sections() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    KEYS.iter().filter_map(move |k| {
        let s = k.path.split_once('.').map_or(k.path, |(s, _)| s);
        (!seen.contains(&s)).then(|| {
            seen.push(s);
            s
        })
    })
}

/// The built-in defaults, as a whole config. Required keys hold placeholders
/// here; the loader drops them from the defaults layer, so they must be set.
pub(super) fn defaults_only() -> NodeConfig {
    NodeConfig {
        agency: AgencyConfig {
            id: AgencyId::new("unset").expect("valid placeholder id"),
            kind: AgencyKind::Police,
            country: String::new(),
        },
        grpc: GrpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_request_bytes: 1024 * 1024,
            max_concurrent_requests: 256,
            request_timeout: Duration::from_secs(30),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        },
        nats: NatsConfig {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            credentials_file: None,
            nkey_seed_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            stream: "WAYMARK".to_owned(),
            stream_replicas: 1,
            batch_max_events: 64,
        },
        journal: JournalConfig {
            data_dir: PathBuf::new(),
            checkpoint_every_entries: 1000,
            checkpoint_interval: Duration::from_secs(60),
            cache_capacity_bytes: 16 * 1024 * 1024,
        },
        keys: KeysConfig {
            signing_key_file: PathBuf::new(),
            encryption_key_file: None,
            retired_encryption_key_files: Vec::new(),
        },
        telemetry: TelemetryConfig {
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            metrics_listen: None,
        },
        shutdown: ShutdownConfig {
            drain_delay: Duration::ZERO,
            grace_period: Duration::from_secs(20),
        },
        federation: FederationConfig {
            manifest_file: None,
            authority_key: None,
            rule_set: "coe-cets197@1".to_owned(),
        },
    }
}

/// Cross-key rules, checked once every key is valid on its own. Returns
/// `(key to blame, message)`.
pub(super) fn cross_checks(c: &NodeConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match (&c.nats.tls_cert_file, &c.nats.tls_key_file) {
        (Some(_), None) => out.push((
            "nats.tls_cert_file",
            "is set but nats.tls_key_file is not: mutual TLS needs both".to_owned(),
        )),
        (None, Some(_)) => out.push((
            "nats.tls_key_file",
            "is set but nats.tls_cert_file is not: mutual TLS needs both".to_owned(),
        )),
        _ => {}
    }
    let g = &c.grpc;
    let tls = [
        ("grpc.tls_cert_file", g.tls_cert_file.is_some()),
        ("grpc.tls_key_file", g.tls_key_file.is_some()),
        ("grpc.tls_client_ca_file", g.tls_client_ca_file.is_some()),
    ];
    if tls.iter().any(|(_, set)| *set) {
        for (key, _) in tls.iter().filter(|(_, set)| !set) {
            out.push((
                key,
                "is required: gRPC TLS needs grpc.tls_cert_file, grpc.tls_key_file and grpc.tls_client_ca_file together (all three or none)".to_owned(),
            ));
        }
    }
    if c.nats.nkey_seed_file.is_some() && c.nats.credentials_file.is_some() {
        out.push((
            "nats.nkey_seed_file",
            "is set together with nats.credentials_file: a connection authenticates as one user; set one of them".to_owned(),
        ));
    }
    if c.federation.manifest_file.is_some() && c.federation.authority_key.is_none() {
        out.push((
            "federation.authority_key",
            "is required with federation.manifest_file: a manifest is trusted only when signed by a pinned authority".to_owned(),
        ));
    }
    if c.telemetry.metrics_listen.is_some()
        && c.telemetry.metrics_listen == Some(c.grpc.listen)
        && c.grpc.listen.port() != 0
    {
        out.push((
            "telemetry.metrics_listen",
            format!("{} is also grpc.listen", c.grpc.listen),
        ));
    }
    out
}

// ---- checks -------------------------------------------------------------

fn as_str(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, found {}", v.type_str()))
}

fn token<T: FromStr>(v: &Value) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    as_str(v)?.parse::<T>().map(drop).map_err(|e| e.to_string())
}

fn parsed<T: FromStr>(v: &Value, what: &str) -> Result<(), String> {
    let s = as_str(v)?;
    s.parse::<T>()
        .map(drop)
        .map_err(|_| format!("invalid {what} {}", shown(s)))
}

fn int<const MIN: i64, const MAX: i64>(v: &Value) -> Result<(), String> {
    let n = v
        .as_integer()
        .ok_or_else(|| format!("expected an integer, found {}", v.type_str()))?;
    if (MIN..=MAX).contains(&n) {
        Ok(())
    } else {
        Err(format!("{n} is out of range {MIN}..={MAX}"))
    }
}

fn country(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "invalid country code {}: expected ISO 3166-1 alpha-2 in upper case, e.g. \"BG\"",
            shown(s)
        ))
    }
}

fn nats_urls(v: &Value) -> Result<(), String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("expected a list of URLs, found {}", v.type_str()))?;
    if list.is_empty() {
        return Err("needs at least one URL".to_owned());
    }
    for url in list {
        let s = as_str(url)?;
        let rest = ["nats://", "tls://"]
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .ok_or_else(|| {
                format!(
                    "invalid NATS URL {}: must start with nats:// or tls://",
                    shown(s)
                )
            })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!("invalid NATS URL {}: no host", shown(s)));
        }
    }
    Ok(())
}

fn stream_name(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid stream name {}: 1 to 32 of A-Z a-z 0-9 _ -",
            shown(s)
        ))
    }
}

fn hex_key(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "{} is not an Ed25519 public key: expected 64 hex digits",
            shown(s)
        ))
    }
}

fn rule_set_ref(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    let ok = s.split_once('@').is_some_and(|(name, version)| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && version.parse::<u32>().is_ok_and(|v| v > 0)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a rule set reference: expected name@version, e.g. coe-cets197@1",
            shown(s)
        ))
    }
}

fn non_empty_path(v: &Value) -> Result<(), String> {
    if as_str(v)?.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(())
    }
}

fn existing_file(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    match std::fs::metadata(s) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a regular file", shown(s))),
        Err(e) => Err(format!("cannot read {}: {e}", shown(s))),
    }
}

/// A secret (private key, nkey seed): an existing regular file that neither
/// group nor others may read, as `ssh` demands of its keys.
fn secret_file(v: &Value) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    existing_file(v)?;
    let s = as_str(v)?;
    let mode = std::fs::metadata(s)
        .map_err(|e| format!("cannot read {}: {e}", shown(s)))?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} holds a secret but is readable by others (mode {:o}); run chmod 600 on it",
            shown(s),
            mode & 0o777
        ))
    }
}

fn secret_files(v: &Value) -> Result<(), String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("expected a list of files, found {}", v.type_str()))?;
    list.iter().try_for_each(secret_file)
}

fn log_format(v: &Value) -> Result<(), String> {
    match as_str(v)? {
        "text" | "json" => Ok(()),
        s => Err(format!(
            "invalid log format {}: expected text or json",
            shown(s)
        )),
    }
}

fn log_filter(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(drop)
        .map_err(|e| format!("invalid log filter {}: {e}", shown(s)))
}

fn otlp_endpoint(v: &Value) -> Result<(), String> {
    let s = as_str(v)?;
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| {
            format!(
                "invalid OTLP endpoint {}: must start with http:// or https://",
                shown(s)
            )
        })?;
    if rest.is_empty() {
        return Err(format!("invalid OTLP endpoint {}: no host", shown(s)));
    }
    Ok(())
}

/// Quotes a rejected value for a message, bounded so it cannot flood a log.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema and the serde shape of [`NodeConfig`] list the same keys.
    #[test]
    fn schema_matches_the_config_struct() {
        let mut full = defaults_only();
        full.nats.credentials_file = Some("c".into());
        full.nats.nkey_seed_file = Some("c".into());
        full.grpc.tls_cert_file = Some("c".into());
        full.grpc.tls_key_file = Some("c".into());
        full.grpc.tls_client_ca_file = Some("c".into());
        full.nats.tls_ca_file = Some("c".into());
        full.nats.tls_cert_file = Some("c".into());
        full.nats.tls_key_file = Some("c".into());
        full.telemetry.otlp_endpoint = Some("http://c".into());
        full.telemetry.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        full.federation.manifest_file = Some("c".into());
        full.federation.authority_key = Some("c".into());
        full.keys.encryption_key_file = Some("c".into());
        full.keys.retired_encryption_key_files = vec!["c".into()];
        let table = toml::Table::try_from(full).unwrap();
        let mut serde_keys: Vec<String> = table
            .iter()
            .flat_map(|(s, t)| {
                t.as_table()
                    .unwrap()
                    .keys()
                    .map(move |k| format!("{s}.{k}"))
            })
            .collect();
        let mut schema_keys: Vec<String> = KEYS.iter().map(|k| k.path.to_owned()).collect();
        serde_keys.sort();
        schema_keys.sort();
        assert_eq!(serde_keys, schema_keys);
    }

    /// Every default passes its own check.
    #[test]
    fn defaults_are_valid() {
        let table = Value::try_from(defaults_only()).unwrap();
        for key in KEYS.iter().filter(|k| k.need == Need::Defaulted) {
            let v = key.path.split('.').try_fold(&table, |t, p| t.get(p));
            if let Some(v) = v {
                assert_eq!((key.check)(v), Ok(()), "{}", key.path);
            }
        }
    }
}
