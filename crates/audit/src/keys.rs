//! The federation's public keys as the exports' headers list them (or, with
//! a federation manifest, as the manifest lists them), and which agency owns
//! each key.
//!
//! The verifier checks a signature against any key in the ring; the audit
//! additionally requires that an event or checkpoint is signed by a key of
//! the agency it names, so one agency cannot sign in another's name.

use std::collections::HashMap;

use waymark_crypto::KeyRing;
use waymark_proto::v1::{Envelope, ExportHeader};

/// Public keys of every agency with an export, and key ownership.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Every header key (with its validity window).
    pub(crate) ring: KeyRing,
    /// key id → owning agency id.
    owner: HashMap<String, String>,
}

impl Keys {
    /// Every member's keys with the federation manifest's windows (see
    /// `manifest.rs`); export headers then add nothing.
    pub(crate) fn from_manifest(m: &waymark_crypto::manifest::VerifiedManifest) -> Self {
        let (ring, owners) = crate::manifest::ring(m);
        Self {
            ring,
            owner: owners.into_iter().collect(),
        }
    }

    /// Adds an export header's keys. Malformed keys are skipped here; the
    /// verifier reports them for that journal.
    pub(crate) fn add(&mut self, h: &ExportHeader) {
        for k in &h.keys {
            let mut one = KeyRing::new();
            if one.insert_public_keys(std::slice::from_ref(k)).is_ok()
                && self
                    .ring
                    .insert_public_keys(std::slice::from_ref(k))
                    .is_ok()
            {
                self.owner.insert(k.key_id.clone(), h.agency_id.clone());
            }
        }
    }

    /// Whether `agency`'s keys are known.
    pub(crate) fn knows_agency(&self, agency: &str) -> bool {
        self.owner.values().any(|a| a == agency)
    }

    /// The agency owning `key_id`, if known.
    pub(crate) fn owner(&self, key_id: &str) -> Option<&str> {
        self.owner.get(key_id).map(String::as_str)
    }

    /// Whether every signature of `env` is by a known key of `agency`.
    pub(crate) fn signed_by(&self, env: &Envelope, agency: &str) -> bool {
        !env.signatures.is_empty()
            && env
                .signatures
                .iter()
                .all(|s| self.owner(&s.key_id) == Some(agency))
    }
}
