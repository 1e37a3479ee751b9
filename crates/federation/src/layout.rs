//! The on-disk layout of a local federation, and its first-run setup.
//!
//! ```text
//! DIR/
//!   federation/authority.key        federation authority signing key (0600)
//!   federation/federation.toml(.sig) the signed manifest
//!   agencies/<id>/signing.key       each agency's signing key (0600)
//!   agencies/<id>/encryption.key    its X25519 key for personal data sealed to it (0600)
//!   agencies/<id>/nats.nk           its NATS user nkey seed (0600)
//!   agencies/<id>/node.toml         its node configuration (rewritten each start)
//!   agencies/<id>/journal/          its journal and agency store
//!   nats/store/                     JetStream's store
//!   nats/provisioner.nk             the stream provisioner's nkey seed (0600)
//!   nats/auth.conf                  the broker's users and permissions (public keys)
//!   tls/                            gRPC certificates when started with TLS (ca, server, launcher client)
//!   logs/<id>.log, logs/nats.log    process logs
//!   exports/<id>.wmj                journal exports (demo)
//! ```
//!
//! Keys and the manifest are made once, on the first start, and reused after:
//! a federation's identity does not change between runs. Node configurations
//! are derived (ports change per start) and rewritten every time.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use waymark_crypto::AgencyKey;
use waymark_crypto::manifest::{Manifest, load_verified};
use waymark_crypto::seal::EncryptionKey;
use waymark_types::{AgencyId, AgencyKind, Timestamp};

/// One agency of the sample federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleAgency {
    /// Its id.
    pub id: &'static str,
    /// Its kind.
    pub kind: AgencyKind,
    /// Its country.
    pub country: &'static str,
}

/// The sample federation `waymark up` and `waymark demo` run: every agency
/// kind of a national referral mechanism, with two shelters so that a
/// handover one shelter declines can be re-offered to another.
pub const SAMPLE: &[SampleAgency] = &[
    SampleAgency {
        id: "bg-police-sofia",
        kind: AgencyKind::Police,
        country: "BG",
    },
    SampleAgency {
        id: "bg-shelter-sofia",
        kind: AgencyKind::Shelter,
        country: "BG",
    },
    SampleAgency {
        id: "bg-shelter-varna",
        kind: AgencyKind::Shelter,
        country: "BG",
    },
    SampleAgency {
        id: "bg-ngo-outreach",
        kind: AgencyKind::Ngo,
        country: "BG",
    },
    SampleAgency {
        id: "iom-return-sofia",
        kind: AgencyKind::ReturnDesk,
        country: "BG",
    },
    SampleAgency {
        id: "bg-labour-ministry",
        kind: AgencyKind::Labour,
        country: "BG",
    },
];

/// Paths of a local federation under one directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The federation authority's key.
    pub fn authority_key(&self) -> PathBuf {
        self.root.join("federation").join("authority.key")
    }

    /// The signed manifest.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("federation").join("federation.toml")
    }

    /// An agency's directory.
    pub fn agency(&self, id: &str) -> PathBuf {
        self.root.join("agencies").join(id)
    }

    /// An agency's signing key.
    pub fn signing_key(&self, id: &str) -> PathBuf {
        self.agency(id).join("signing.key")
    }

    /// An agency's X25519 encryption key.
    pub fn encryption_key(&self, id: &str) -> PathBuf {
        self.agency(id).join("encryption.key")
    }

    /// An agency's node configuration.
    pub fn node_config(&self, id: &str) -> PathBuf {
        self.agency(id).join("node.toml")
    }

    /// An agency's journal directory.
    pub fn journal(&self, id: &str) -> PathBuf {
        self.agency(id).join("journal")
    }

    /// An agency's NATS user seed.
    pub fn nats_seed(&self, id: &str) -> PathBuf {
        self.agency(id).join("nats.nk")
    }

    /// The stream provisioner's NATS user seed.
    pub fn provisioner_seed(&self) -> PathBuf {
        self.root.join("nats").join("provisioner.nk")
    }

    /// The broker's authorization block, as last generated.
    pub fn nats_auth(&self) -> PathBuf {
        self.root.join("nats").join("auth.conf")
    }

    /// The seed files of `members` and of the provisioner.
    ///
    /// # Errors
    /// If a member id is not a valid agency id.
    pub fn nats_seed_files(
        &self,
        members: &[SampleAgency],
    ) -> anyhow::Result<crate::natsauth::SeedFiles> {
        Ok(crate::natsauth::SeedFiles {
            provisioner: self.provisioner_seed(),
            agencies: members
                .iter()
                .map(|m| Ok((AgencyId::new(m.id)?, self.nats_seed(m.id))))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// JetStream's store.
    pub fn nats_store(&self) -> PathBuf {
        self.root.join("nats").join("store")
    }

    /// The gRPC certificates (when the federation serves TLS).
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// A process log.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }

    /// Where journal exports go.
    pub fn exports(&self) -> PathBuf {
        self.root.join("exports")
    }

    /// Makes the keys and the signed manifest for `members` on first use;
    /// later, checks that the manifest still verifies and lists exactly
    /// `members`. Returns the authority key.
    ///
    /// # Errors
    /// If a file cannot be written or read, or the directory holds another
    /// federation.
    pub fn ensure_identity(&self, members: &[SampleAgency]) -> anyhow::Result<AgencyKey> {
        for dir in [
            self.root.join("federation"),
            self.root.join("logs"),
            self.nats_store(),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let authority = load_or_generate(&self.authority_key())?;
        let mut keys = Vec::new();
        let mut sealing = Vec::new();
        for m in members {
            std::fs::create_dir_all(self.agency(m.id))?;
            keys.push(load_or_generate(&self.signing_key(m.id))?);
            sealing.push(load_or_generate_encryption(&self.encryption_key(m.id))?);
        }
        let path = self.manifest();
        if path.exists() {
            let v = load_verified(&path, &authority.public_key())
                .with_context(|| format!("{} holds another federation", self.root.display()))?;
            let mut manifest = v.manifest.clone();
            let mut reissue = false;
            for ((m, k), e) in members.iter().zip(&keys).zip(&sealing) {
                let member = v.members.iter().find(|x| {
                    x.id.as_str() == m.id && x.keys.iter().any(|t| t.key == k.public_key())
                });
                let Some(member) = member else {
                    bail!(
                        "{} does not list {} with its key; remove {} to start a new federation",
                        path.display(),
                        m.id,
                        self.root.display()
                    );
                };
                // A federation made before agencies had encryption keys:
                // the local authority lists them and signs again.
                if !member
                    .encryption_keys
                    .iter()
                    .any(|x| x.public == e.public_key())
                {
                    let from = Timestamp::now().plus_days(-1);
                    manifest.add_encryption_key(&member.id, &e.public_key(), from);
                    reissue = true;
                }
            }
            if reissue {
                manifest.issued_at = waymark_crypto::manifest::datetime(Timestamp::now());
                manifest
                    .write_signed(&path, &authority)
                    .context("re-signing the federation manifest")?;
            }
        } else {
            let mut manifest = Manifest::new("waymark-local");
            let from = Timestamp::now().plus_days(-1);
            for ((m, k), e) in members.iter().zip(&keys).zip(&sealing) {
                let id = AgencyId::new(m.id)?;
                manifest.add(id.clone(), m.kind, m.country, &k.public_key(), from);
                manifest.add_encryption_key(&id, &e.public_key(), from);
            }
            manifest
                .write_signed(&path, &authority)
                .context("writing the federation manifest")?;
        }
        Ok(authority)
    }
}

fn load_or_generate(path: &Path) -> anyhow::Result<AgencyKey> {
    if path.exists() {
        Ok(AgencyKey::load(path)?)
    } else {
        let k = AgencyKey::generate();
        k.save(path)?;
        Ok(k)
    }
}

fn load_or_generate_encryption(path: &Path) -> anyhow::Result<EncryptionKey> {
    if path.exists() {
        Ok(EncryptionKey::load(path)?)
    } else {
        let k = EncryptionKey::generate();
        k.save(path)?;
        Ok(k)
    }
}
