//! NATS authorization of a federation: one nkey user per agency, pinned to
//! its own subjects, and one provisioning user that creates the streams.
//!
//! # Design
//! Threat model: the network, the broker operator and any single agency may
//! be hostile. Event *contents* are protected end to end (signatures,
//! encryption to the recipient); what the broker must enforce is who may
//! put what where, and who may read which messages:
//!
//! | user | publish | subscribe |
//! |---|---|---|
//! | agency `A` | `waymark.v1.evt.A.>`, `waymark.v1.ckpt.A`, `waymark.v1.cosig.A.>`; the JetStream API of its *own* three durables only (create with its own name **and** filter in the subject, info, pull next, ack); stream info of the two streams | `_INBOX_A.>` (its replies and pull deliveries) |
//! | provisioner | create / info / update of the two streams | `_INBOX_waymark-provisioner.>` |
//!
//! So `A` cannot publish as `B` (sender token), cannot subscribe to event
//! subjects or to `B`'s inbox prefix, cannot create, read, ack or delete
//! `B`'s durables nor a consumer of its own filtered on `B`'s inbox (the
//! server checks that the filter in the create subject equals the requested
//! one), and cannot fetch stored messages directly (`STREAM.MSG.GET`,
//! `DIRECT.GET` are denied explicitly as well as absent from the allow list).
//! Agencies cannot create streams: a stream created by a hostile agency
//! could carry `republish`/`sources` settings that copy every event to it,
//! so only the provisioner creates them: [`provision_streams`] in `waymark
//! up` at start, [`provision`] in `waymark nats provision` on a deployed
//! cluster (the provisioning step of `deploy/`).
//!
//! Residual, by design of NATS: `STREAM.INFO` on the two streams (needed to
//! bind) can report per-subject message counts, i.e. traffic metadata
//! (sender, recipient and kind tokens; never personal data).
//!
//! Secrets: each seed file (`SU...`) is written once, mode 0600, never
//! overwritten; the server configuration holds only public keys (`U...`),
//! so it can be committed and shipped (see `deploy/nats/`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nkeys::KeyPair;
use waymark_bus::provision::{CHECKPOINT_STREAM, EVENT_STREAM, durables_of};
use waymark_bus::subjects;
use waymark_types::AgencyId;

/// The NATS account every Waymark user belongs to.
pub const ACCOUNT: &str = "WAYMARK";
/// Name (and inbox prefix token) of the stream-provisioning user.
pub const PROVISIONER: &str = "waymark-provisioner";

/// Generating or reading nkey seeds failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsAuthError {
    /// A seed file could not be read or written.
    #[error("nkey seed file {file}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A seed file does not hold a user nkey seed.
    #[error("{file} does not hold a NATS user nkey seed")]
    BadSeed {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: nkeys::error::Error,
    },
}

/// Subjects a user may and may not publish and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    /// Publish allow list (everything else is refused).
    pub publish_allow: Vec<String>,
    /// Publish deny list (wins over the allow list).
    pub publish_deny: Vec<String>,
    /// Subscribe allow list (everything else is refused).
    pub subscribe_allow: Vec<String>,
}

/// JetStream API subjects nobody but the operator may use: fetching stored
/// messages directly, and changing or removing streams and consumers.
const DENIED_API: &[&str] = &[
    "$JS.API.STREAM.MSG.GET.>",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
];

/// Agency `me`'s permissions.
pub fn agency_permissions(me: &AgencyId) -> Permissions {
    let mut publish_allow: Vec<String> = subjects::published_by(me).into();
    for d in durables_of(me) {
        let (s, n) = (d.stream, &d.name);
        publish_allow.push(format!("$JS.API.CONSUMER.CREATE.{s}.{n}.{}", d.filter));
        publish_allow.push(format!("$JS.API.CONSUMER.INFO.{s}.{n}"));
        publish_allow.push(format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{n}"));
        publish_allow.push(format!("$JS.ACK.{s}.{n}.>"));
    }
    for s in [EVENT_STREAM, CHECKPOINT_STREAM] {
        publish_allow.push(format!("$JS.API.STREAM.INFO.{s}"));
    }
    Permissions {
        publish_allow,
        publish_deny: DENIED_API.iter().map(|s| (*s).to_owned()).collect(),
        subscribe_allow: vec![format!("{}.>", subjects::inbox_prefix(me))],
    }
}

/// The provisioning user's permissions: the two streams, nothing else.
pub fn provisioner_permissions() -> Permissions {
    let mut publish_allow = Vec::new();
    for s in [EVENT_STREAM, CHECKPOINT_STREAM] {
        for op in ["CREATE", "INFO", "UPDATE"] {
            publish_allow.push(format!("$JS.API.STREAM.{op}.{s}"));
        }
    }
    Permissions {
        publish_allow,
        publish_deny: Vec::new(),
        subscribe_allow: vec![format!("{}.>", provisioner_inbox_prefix())],
    }
}

/// The provisioning user's reply-inbox prefix.
pub fn provisioner_inbox_prefix() -> String {
    format!("_INBOX_{PROVISIONER}")
}

/// One user of the server configuration.
#[derive(Debug, Clone)]
pub struct User {
    /// Who it is (written as a comment).
    pub name: String,
    /// Its public nkey (`U...`).
    pub nkey: String,
    /// What it may do.
    pub permissions: Permissions,
}

/// The `accounts { }` block listing `users` in the [`ACCOUNT`] account with
/// JetStream enabled. Public keys only: safe to commit.
pub fn render(users: &[User]) -> String {
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = String::from(
        "# Waymark broker authorization, generated by `waymark keys nats`.\n\
         # Public nkeys only; each user's seed stays with its agency.\n",
    );
    let _ = writeln!(
        out,
        "accounts {{\n  {ACCOUNT} {{\n    jetstream: enabled\n    users: ["
    );
    for u in users {
        let p = &u.permissions;
        let _ = writeln!(out, "      # {}", u.name);
        let _ = writeln!(out, "      {{ nkey: {}, permissions: {{", quote(&u.nkey));
        let _ = write!(
            out,
            "          publish: {{ allow: {}",
            list(&p.publish_allow)
        );
        if !p.publish_deny.is_empty() {
            let _ = write!(out, ", deny: {}", list(&p.publish_deny));
        }
        let _ = writeln!(out, " }}");
        let _ = writeln!(
            out,
            "          subscribe: {{ allow: {} }}",
            list(&p.subscribe_allow)
        );
        out.push_str("      } }\n");
    }
    out.push_str("    ]\n  }\n}\n");
    out
}

/// Where the seeds of a federation's users live.
#[derive(Debug, Clone)]
pub struct SeedFiles {
    /// The provisioning user's seed.
    pub provisioner: PathBuf,
    /// Each agency's seed.
    pub agencies: Vec<(AgencyId, PathBuf)>,
}

/// Loads every seed, generating (mode 0600, never overwriting) those that
/// do not exist yet, and returns the server's authorization block.
///
/// # Errors
/// [`NatsAuthError`] naming the seed file that could not be read, written
/// or parsed.
pub fn ensure(seeds: &SeedFiles) -> Result<String, NatsAuthError> {
    let mut users = vec![User {
        name: PROVISIONER.to_owned(),
        nkey: load_or_generate(&seeds.provisioner)?.public_key(),
        permissions: provisioner_permissions(),
    }];
    for (id, file) in &seeds.agencies {
        users.push(User {
            name: id.to_string(),
            nkey: load_or_generate(file)?.public_key(),
            permissions: agency_permissions(id),
        });
    }
    Ok(render(&users))
}

/// Reads a user seed file.
///
/// # Errors
/// [`NatsAuthError::Io`] or [`NatsAuthError::BadSeed`].
pub fn load_seed(file: &Path) -> Result<KeyPair, NatsAuthError> {
    let text = std::fs::read_to_string(file).map_err(|source| NatsAuthError::Io {
        file: file.to_owned(),
        source,
    })?;
    KeyPair::from_seed(text.trim()).map_err(|source| NatsAuthError::BadSeed {
        file: file.to_owned(),
        source,
    })
}

/// [`load_seed`], or a new user key written to `file` (0600) first.
///
/// # Errors
/// As [`load_seed`], or [`NatsAuthError::Io`] when writing fails.
pub fn load_or_generate(file: &Path) -> Result<KeyPair, NatsAuthError> {
    if file.exists() {
        return load_seed(file);
    }
    let io = |source| NatsAuthError::Io {
        file: file.to_owned(),
        source,
    };
    let key = KeyPair::new_user();
    let seed = key.seed().map_err(|source| NatsAuthError::BadSeed {
        file: file.to_owned(),
        source,
    })?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io)?;
    f.write_all(format!("{seed}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(key)
}

/// Creates (or verifies) the two streams as the provisioning user whose
/// seed is in `seed_file`, on the server at `url` (plain TCP, one replica:
/// the local federation's broker).
///
/// # Errors
/// If the connection is refused or a stream cannot be created or differs
/// from what the bus expects.
pub async fn provision_streams(
    url: &str,
    seed_file: &Path,
    any_member: &AgencyId,
) -> anyhow::Result<()> {
    provision_as(&ProvisionTarget::new(url, seed_file), any_member).await
}

/// Where and how the stream provisioner connects: what
/// `waymark nats provision` is given on a deployed cluster.
#[derive(Debug, Clone)]
pub struct ProvisionTarget {
    /// Server URLs (any node of the cluster).
    pub urls: Vec<String>,
    /// The provisioning user's nkey seed file.
    pub seed_file: PathBuf,
    /// CA that signed the servers' certificates; when set, only TLS is used.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers with `verify: true`.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Copies of each stream (the agencies' `nats.stream_replicas`).
    pub stream_replicas: usize,
}

impl ProvisionTarget {
    /// `url` without TLS, one replica.
    pub fn new(url: &str, seed_file: &Path) -> Self {
        Self {
            urls: vec![url.to_owned()],
            seed_file: seed_file.to_owned(),
            tls_ca_file: None,
            tls_client: None,
            stream_replicas: 1,
        }
    }
}

/// Creates (or verifies) the two streams as the provisioning user described
/// by `target`. One attempt: a caller waiting for a starting cluster
/// retries.
///
/// # Errors
/// If the seed cannot be read, the connection is refused, or a stream
/// cannot be created or differs from what the bus expects.
pub async fn provision(target: &ProvisionTarget) -> anyhow::Result<()> {
    // The provisioner creates no consumers, so the agency that BusConfig
    // wants (it names consumers) is only a placeholder.
    let placeholder = AgencyId::new(PROVISIONER).map_err(|e| anyhow::anyhow!("{e}"))?;
    provision_as(target, &placeholder).await
}

async fn provision_as(target: &ProvisionTarget, any_member: &AgencyId) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let seed = load_seed(&target.seed_file)?
        .seed()
        .context("encoding the provisioner seed")?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(PROVISIONER)
        .nkey(seed)
        .custom_inbox_prefix(provisioner_inbox_prefix());
    if let Some(ca) = &target.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &target.tls_client {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    let urls: Vec<async_nats::ServerAddr> = target
        .urls
        .iter()
        .map(|u| u.parse().with_context(|| format!("NATS URL {u:?}")))
        .collect::<anyhow::Result<_>>()?;
    let client = opts
        .connect(urls)
        .await
        .context("connecting to nats-server as the stream provisioner")?;
    let js = async_nats::jetstream::new(client.clone());
    // Stream settings are the bus defaults, with the deployment's replicas.
    let mut config =
        waymark_bus::BusConfig::new(any_member.clone(), waymark_types::AgencyKind::Police);
    config.stream_replicas = target.stream_replicas;
    let done = waymark_bus::provision::provision(&js, &config)
        .await
        .context("provisioning the JetStream streams");
    let _ = client.drain().await;
    done
}

/// A NATS config string literal (JSON quoting, which NATS accepts).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgencyId {
        AgencyId::new(s).unwrap()
    }

    #[test]
    fn an_agency_may_publish_only_under_its_own_tokens() {
        let p = agency_permissions(&a("shelter-varna"));
        for s in &p.publish_allow {
            let own = s.starts_with("waymark.v1.evt.shelter-varna.")
                || s == "waymark.v1.ckpt.shelter-varna"
                || s.starts_with("waymark.v1.cosig.shelter-varna.")
                || s.contains("-shelter-varna")
                || s.starts_with("$JS.API.STREAM.INFO.");
            assert!(own, "{s}");
        }
        assert!(p.publish_allow.contains(
            &"$JS.API.CONSUMER.CREATE.WAYMARK_EVENTS.inbox-shelter-varna.waymark.v1.evt.*.shelter-varna.*"
                .to_owned()
        ));
        assert_eq!(p.subscribe_allow, ["_INBOX_shelter-varna.>"]);
        assert!(p.publish_deny.iter().any(|d| d == "$JS.API.DIRECT.GET.>"));
    }

    #[test]
    fn seeds_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a").join("x.nk");
        let k1 = load_or_generate(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = load_or_generate(&file).unwrap();
        assert_eq!(k1.public_key(), k2.public_key());
        assert!(k1.public_key().starts_with('U'));
        let conf = ensure(&SeedFiles {
            provisioner: dir.path().join("p.nk"),
            agencies: vec![(a("shelter-varna"), file)],
        })
        .unwrap();
        assert!(conf.contains(&k1.public_key()), "{conf}");
        let seed = k1.seed().unwrap();
        assert!(!conf.contains(&seed), "a seed leaked into the config");
    }
}
