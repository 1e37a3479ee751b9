//! `waymark keys`: agency signing and encryption keys, the signed federation
//! manifest, the broker's per-agency nkey users, and certificates for gRPC
//! mutual TLS.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use waymark_crypto::AgencyKey;
use waymark_crypto::manifest::{self, Manifest};
use waymark_crypto::seal::EncryptionKey;
use waymark_federation::natsauth::{self, SeedFiles};
use waymark_federation::tls;
use waymark_types::AgencyId;

/// `waymark keys ...`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a new Ed25519 signing key into a new file (mode 0600; an
    /// existing file is never overwritten) and print its key id.
    Generate {
        /// Where to write the secret key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a new X25519 encryption key (personal data is sealed to it)
    /// into a new file (mode 0600, never overwritten); print its key id and
    /// public key, to list in the manifest.
    Encryption {
        /// Where to write the secret key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the key id and public key of a signing or encryption key file.
    Show {
        /// The secret key file.
        file: PathBuf,
    },
    /// Write a federation manifest listing the given members, signed by the
    /// federation authority's key (`federation.toml` and `.sig` beside it).
    /// Agencies hand in public keys only.
    Manifest {
        /// The federation authority's signing key file.
        #[arg(long)]
        authority: PathBuf,
        /// The federation's name.
        #[arg(long, default_value = "waymark")]
        federation: String,
        /// A member: `ID,KIND,COUNTRY,SIGNING_PUBLIC_HEX[,ENCRYPTION_PUBLIC_HEX]`
        /// (kinds: police, shelter, ngo, labour, return_desk). Repeat per member.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// The manifest file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// NATS users for a federation: one nkey seed per agency plus one for
    /// the stream provisioner in SEEDS (mode 0600, reused when present), and
    /// the server's authorization block (public keys and per-agency subject
    /// permissions only) in OUT, to `include` from nats-server.conf.
    Nats {
        /// An agency id (repeat for every member).
        #[arg(long = "agency", required_unless_present = "sample")]
        agencies: Vec<String>,
        /// The sample federation's agencies (what `waymark up` runs).
        #[arg(long)]
        sample: bool,
        /// Directory of the secret seeds (`<agency>.nk`, `waymark-provisioner.nk`).
        #[arg(long)]
        seeds: PathBuf,
        /// The authorization file to write (e.g. deploy/nats/auth.conf).
        #[arg(long)]
        out: PathBuf,
    },
    /// Certificates for gRPC mutual TLS.
    #[command(subcommand)]
    Tls(TlsCommand),
}

/// `waymark keys tls ...`: files are `<name>.crt` (0644) and `<name>.key`
/// (0600) in `--out`; existing files are never overwritten.
#[derive(Debug, Subcommand)]
pub(crate) enum TlsCommand {
    /// A new certificate authority (`ca.crt`, `ca.key`).
    Ca {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Waymark gRPC CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u64,
    },
    /// A server certificate for an agency node (`server.crt`, `server.key`).
    Server {
        /// Directory holding `ca.crt` and `ca.key`.
        #[arg(long)]
        ca: PathBuf,
        /// A DNS name or IP address the node is reached by (repeatable).
        #[arg(long = "dns", required = true)]
        names: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
    /// A client certificate for a back-office system (`<name>.crt`, `<name>.key`).
    Client {
        /// Directory holding `ca.crt` and `ca.key`.
        #[arg(long)]
        ca: PathBuf,
        /// The client's name (common name and file stem).
        #[arg(long)]
        name: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
}

/// Runs a `keys` subcommand.
pub(crate) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::Generate { out: path } => {
            let key = AgencyKey::generate();
            // KeyFileError already names the file and the failed step.
            key.save(&path)?;
            writeln!(out, "{}", key.key_id())?;
        }
        KeysCommand::Encryption { out: path } => {
            let key = EncryptionKey::generate();
            key.save(&path)?;
            writeln!(out, "key-id: {}", key.key_id())?;
            writeln!(out, "public: {}", hex::encode(key.public_key()))?;
        }
        KeysCommand::Show { file } => {
            if let Ok(key) = EncryptionKey::load(&file) {
                writeln!(out, "key-id: {}", key.key_id())?;
                writeln!(out, "public: {}", hex::encode(key.public_key()))?;
            } else {
                let key = AgencyKey::load(&file)?;
                writeln!(out, "key-id: {}", key.key_id())?;
                writeln!(out, "public: {}", hex::encode(key.public_key().as_bytes()))?;
            }
        }
        KeysCommand::Manifest {
            authority,
            federation,
            members,
            out: path,
        } => {
            let authority = AgencyKey::load(&authority)?;
            let mut m = Manifest::new(&federation);
            let now = waymark_types::Timestamp::now();
            for spec in &members {
                let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
                let (id, kind, country, signing, encryption) = match parts.as_slice() {
                    [i, k, c, s] => (*i, *k, *c, *s, None),
                    [i, k, c, s, e] => (*i, *k, *c, *s, Some(*e)),
                    _ => anyhow::bail!(
                        "--member {spec:?}: expected ID,KIND,COUNTRY,SIGNING_PUBLIC_HEX[,ENCRYPTION_PUBLIC_HEX]"
                    ),
                };
                let id = AgencyId::new(id).with_context(|| format!("--member {spec:?}: id"))?;
                let kind: waymark_types::AgencyKind = kind
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--member {spec:?}: kind: {e}"))?;
                let signing = manifest::decode_key(signing)
                    .map_err(|e| anyhow::anyhow!("--member {spec:?}: signing key: {e}"))?;
                m.add(id.clone(), kind, country, &signing, now);
                if let Some(e) = encryption {
                    let mut raw = [0u8; 32];
                    hex::decode_to_slice(e, &mut raw).map_err(|_| {
                        anyhow::anyhow!("--member {spec:?}: encryption key: not 64 hex digits")
                    })?;
                    m.add_encryption_key(&id, &raw, now);
                }
            }
            // Check before signing: the same checks every node makes.
            let text = m.to_toml();
            let parsed: Manifest = toml::from_str(&text).context("re-reading the manifest")?;
            parsed.check(&path)?;
            m.write_signed(&path, &authority)?;
            writeln!(
                out,
                "{} ({} members), signed by {}",
                path.display(),
                members.len(),
                authority.key_id()
            )?;
        }
        KeysCommand::Nats {
            mut agencies,
            sample,
            seeds,
            out: file,
        } => {
            if sample {
                agencies.extend(waymark_federation::SAMPLE.iter().map(|m| m.id.to_owned()));
            }
            let files = SeedFiles {
                provisioner: seeds.join(format!("{}.nk", natsauth::PROVISIONER)),
                agencies: agencies
                    .iter()
                    .map(|a| Ok((AgencyId::new(a)?, seeds.join(format!("{a}.nk")))))
                    .collect::<anyhow::Result<_>>()?,
            };
            let text = natsauth::ensure(&files)?;
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            writeln!(
                out,
                "{}: {} agency users and the provisioner; seeds in {}",
                file.display(),
                files.agencies.len(),
                seeds.display()
            )?;
        }
        KeysCommand::Tls(cmd) => {
            let (dir, stem, pair) = match cmd {
                TlsCommand::Ca { out, name, days } => {
                    (out, "ca".to_owned(), tls::new_ca(&name, days)?)
                }
                TlsCommand::Server {
                    ca,
                    names,
                    out,
                    days,
                } => {
                    let ca = tls::read_pair(&ca, "ca")?;
                    (
                        out,
                        "server".to_owned(),
                        tls::issue_server(&ca, &names, days)?,
                    )
                }
                TlsCommand::Client {
                    ca,
                    name,
                    out,
                    days,
                } => {
                    AgencyId::new(&name).with_context(|| {
                        format!("{name:?}: a client name is a file stem of a-z, 0-9 and -")
                    })?;
                    let ca = tls::read_pair(&ca, "ca")?;
                    let pair = tls::issue_client(&ca, &name, days)?;
                    (out, name, pair)
                }
            };
            let (cert, key) = tls::write_pair(&dir, &stem, &pair)?;
            writeln!(out, "{}\n{}", cert.display(), key.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
