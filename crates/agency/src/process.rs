//! The process entry point of an agency service binary: one call from its
//! `main`.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     waymark_agency::process::main(waymark_types::AgencyKind::Police, |services, _recorder| services)
//! }
//! ```
//!
//! Start-up, in order, all before any port is bound (a problem exits 64 with
//! the offending key named, as any configuration error):
//! 1. the layered configuration loads (`waymark_node`);
//! 2. `agency.kind` is this binary's kind;
//! 3. the federation manifest verifies against the pinned authority key, and
//!    names this agency, with this kind, active;
//! 4. the signing key file loads and its public key is one of this agency's
//!    keys in the manifest, valid now;
//! 5. the rule set is known.
//!
//! Then the NATS connection opens (retrying until the broker answers, so
//! agencies and broker may start in any order), the [`Agency`] starts, and
//! the common services plus the binary's own are served until SIGTERM or
//! SIGINT, which drains and exits 0.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use waymark_bus::Directory;
use waymark_crypto::AgencyKey;
use waymark_crypto::manifest::{self, Status, VerifiedManifest};
use waymark_crypto::seal::EncryptionKey;
use waymark_node::config::{ConfigError, ConfigProblem, Origin};
use waymark_node::{NodeArgs, NodeConfig, Services, Shutdown};
use waymark_policy::{RuleSetRef, RuleSets};
use waymark_types::{AgencyKind, Timestamp};

use crate::{Agency, AgencySettings, Recorder};

/// The flags of an agency binary: the node's own.
#[derive(Debug, Parser)]
#[command(version, about = "A Waymark agency service")]
pub struct AgencyArgs {
    /// Node flags.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What start-up checks prepared for the running agency.
#[derive(Debug)]
pub struct Prepared {
    /// The agency's signing key.
    pub key: AgencyKey,
    /// The agency's X25519 key for personal data sealed to it; `None` when
    /// `keys.encryption_key_file` is unset (it then cannot receive any).
    pub encryption_key: Option<EncryptionKey>,
    /// Retired encryption keys (`keys.retired_encryption_key_files`): they
    /// only open data sealed to them before a rotation.
    pub retired_encryption_keys: Vec<EncryptionKey>,
    /// The federation members and their keys.
    pub directory: Directory,
    /// The rule set this agency records under.
    pub rule_set: RuleSetRef,
}

/// Runs the agency binary of `kind`: parses flags, checks and starts, serves
/// the common services plus those `add` puts in, and returns the exit status.
pub fn main(kind: AgencyKind, add: fn(Services, Recorder) -> Services) -> ExitCode {
    let args: AgencyArgs = waymark_node::parse_args();
    run_with_args(kind, &args.node, add)
}

/// [`main`] with flags already parsed (for a launcher that dispatches on kind).
pub fn run_with_args(
    kind: AgencyKind,
    args: &NodeArgs,
    add: fn(Services, Recorder) -> Services,
) -> ExitCode {
    waymark_node::main_with_checks(
        args,
        |config| prepare(kind, config),
        move |config, prepared, shutdown| serve(config, prepared, shutdown, add),
    )
}

fn problem(key: &str, message: String) -> ConfigError {
    ConfigError {
        problems: vec![ConfigProblem {
            origin: Origin::Unset,
            key: key.to_owned(),
            message,
        }],
    }
}

/// The start-up checks (2–5 above).
///
/// # Errors
/// A [`ConfigError`] naming the key at fault.
pub fn prepare(kind: AgencyKind, config: &NodeConfig) -> Result<Prepared, ConfigError> {
    if config.agency.kind != kind {
        return Err(problem(
            "agency.kind",
            format!(
                "is {}, but this is the {kind} service: start the {} service for it",
                config.agency.kind, config.agency.kind
            ),
        ));
    }
    let path = config.federation.manifest_file.as_deref().ok_or_else(|| {
        problem(
            "federation.manifest_file",
            "is required: the signed federation manifest naming the member agencies and their keys"
                .to_owned(),
        )
    })?;
    let authority_hex = config.federation.authority_key.as_deref().unwrap_or("");
    let authority =
        manifest::decode_key(authority_hex).map_err(|m| problem("federation.authority_key", m))?;
    let verified = manifest::load_verified(path, &authority)
        .map_err(|e| problem("federation.manifest_file", e.to_string()))?;
    let key = load_key(&config.keys.signing_key_file)?;
    check_membership(config, &verified, &key, path)?;
    let rule_set = config
        .federation
        .rule_set
        .split_once('@')
        .and_then(|(id, v)| Some(RuleSetRef::new(id, v.parse().ok()?)))
        .filter(|r| RuleSets::builtin().get(r).is_some())
        .ok_or_else(|| {
            problem(
                "federation.rule_set",
                format!(
                    "{} is not a rule set this version knows (built in: coe-cets197@1, bg@1)",
                    config.federation.rule_set
                ),
            )
        })?;
    let encryption_key = config
        .keys
        .encryption_key_file
        .as_deref()
        .map(|f| load_encryption_key(config, f, "keys.encryption_key_file", &verified, path))
        .transpose()?;
    let retired_encryption_keys = config
        .keys
        .retired_encryption_key_files
        .iter()
        .map(|f| {
            load_encryption_key(
                config,
                f,
                "keys.retired_encryption_key_files",
                &verified,
                path,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut directory = Directory::new();
    for m in verified.members {
        directory.insert(m.id.clone(), m.kind, m.keys);
        directory.insert_encryption_keys(&m.id, m.encryption_keys);
    }
    Ok(Prepared {
        key,
        encryption_key,
        retired_encryption_keys,
        directory,
        rule_set,
    })
}

/// Loads the encryption key `file` (set under config key `what`); its public
/// key must be one of this agency's encryption keys in the manifest (valid
/// now or earlier: a retired key still opens data sealed to it in transit).
fn load_encryption_key(
    config: &NodeConfig,
    file: &Path,
    what: &str,
    verified: &VerifiedManifest,
    path: &Path,
) -> Result<EncryptionKey, ConfigError> {
    let key = EncryptionKey::load(file).map_err(|e| problem(what, e.to_string()))?;
    let me = &config.agency.id;
    let listed = verified
        .members
        .iter()
        .filter(|m| &m.id == me)
        .flat_map(|m| &m.encryption_keys)
        .any(|k| k.public == key.public_key());
    if !listed {
        return Err(problem(
            what,
            format!(
                "key {} is not one of {me}'s encryption keys in {}",
                key.key_id(),
                path.display()
            ),
        ));
    }
    Ok(key)
}

fn load_key(path: &Path) -> Result<AgencyKey, ConfigError> {
    AgencyKey::load(path).map_err(|e| problem("keys.signing_key_file", e.to_string()))
}

fn check_membership(
    config: &NodeConfig,
    verified: &VerifiedManifest,
    key: &AgencyKey,
    path: &Path,
) -> Result<(), ConfigError> {
    let me = &config.agency.id;
    let member = verified
        .members
        .iter()
        .find(|m| &m.id == me)
        .ok_or_else(|| {
            problem(
                "agency.id",
                format!("{me} is not a member in {}", path.display()),
            )
        })?;
    if member.kind != config.agency.kind {
        return Err(problem(
            "agency.kind",
            format!(
                "is {}, but {} lists {me} as {}",
                config.agency.kind,
                path.display(),
                member.kind
            ),
        ));
    }
    if member.status != Status::Active {
        return Err(problem(
            "agency.id",
            format!("{me} is {:?} in {}", member.status, path.display()).to_lowercase(),
        ));
    }
    let now = Timestamp::now();
    let listed = member.keys.iter().find(|k| k.key == key.public_key());
    match listed {
        Some(k) if k.valid_at(now) => Ok(()),
        Some(_) => Err(problem(
            "keys.signing_key_file",
            format!(
                "key {} is outside its validity window in {} (rotated or not yet valid)",
                key.key_id(),
                path.display()
            ),
        )),
        None => Err(problem(
            "keys.signing_key_file",
            format!(
                "key {} is not one of {me}'s keys in {}",
                key.key_id(),
                path.display()
            ),
        )),
    }
}

/// Errors of a running agency process.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The NATS connection options could not be built.
    #[error("NATS connection: {0}")]
    Nats(String),
    /// The agency did not start.
    #[error(transparent)]
    Start(#[from] crate::StartError),
    /// The gRPC server failed.
    #[error(transparent)]
    Run(#[from] waymark_node::RunError),
}

async fn serve(
    config: NodeConfig,
    prepared: Prepared,
    shutdown: Shutdown,
    add: fn(Services, Recorder) -> Services,
) -> Result<(), ServeError> {
    let client = connect(&config).await?;
    let js = async_nats::jetstream::new(client);
    let mut settings = AgencySettings::from_node(&config);
    settings.rule_set = prepared.rule_set;
    settings.bus.stream_replicas = config.nats.stream_replicas;
    settings.bus.batch_max_events = config.nats.batch_max_events;
    settings.encryption_key = prepared.encryption_key;
    settings.retired_encryption_keys = prepared.retired_encryption_keys;
    let agency = Agency::start(
        settings,
        js,
        Arc::new(prepared.directory),
        prepared.key,
        Arc::new(RuleSets::builtin()),
        &shutdown,
    )?;
    let services = add(agency.services(), agency.recorder());
    let node = waymark_node::run(&config, services, shutdown).await?;
    tracing::info!(grpc = %node.local_addr(), "serving");
    node.wait().await?;
    Ok(())
}

/// Opens the NATS connection the configuration describes: nkey seed or
/// credentials, the agency's own reply-inbox prefix, TLS
/// (server verification with the configured CA, client certificate when
/// set), retrying the first connection until the broker answers.
///
/// # Errors
/// [`ServeError::Nats`] if the options are unusable (an unreadable
/// credentials file, say).
pub async fn connect(config: &NodeConfig) -> Result<async_nats::Client, ServeError> {
    let n = &config.nats;
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("waymark-{}", config.agency.id))
        // Replies and pull deliveries arrive under this agency's own prefix,
        // the only place its broker permissions let it subscribe.
        .custom_inbox_prefix(waymark_bus::subjects::inbox_prefix(&config.agency.id))
        .retry_on_initial_connect();
    if let Some(seed_file) = &n.nkey_seed_file {
        let seed = std::fs::read_to_string(seed_file)
            .map_err(|e| ServeError::Nats(format!("{}: {e}", seed_file.display())))?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some(creds) = &n.credentials_file {
        opts = opts
            .credentials_file(creds)
            .await
            .map_err(|e| ServeError::Nats(format!("{}: {e}", creds.display())))?;
    }
    if let Some(ca) = &n.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&n.tls_cert_file, &n.tls_key_file) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    let urls: Vec<async_nats::ServerAddr> = n
        .urls
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Nats(format!("{e}")))?;
    opts.connect(urls)
        .await
        .map_err(|e| ServeError::Nats(e.to_string()))
}
