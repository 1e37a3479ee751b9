//! The federation manifest: which agencies take part, their kinds and
//! countries, the keys each may sign with and when, and their status; signed
//! by the federation authority.
//!
//! # Design
//! The manifest is a TOML file a person can read and review
//! (`federation.toml`), and its signature a separate small file next to it
//! (`federation.toml.sig`). The signature covers the file's exact bytes,
//! never a re-serialisation, so there is no canonicalisation to get wrong:
//!
//! ```text
//! signed message = PAE("application/vnd.waymark.federation-manifest.v1+toml", file bytes)
//! ```
//!
//! (DSSE's pre-authentication encoding, as every Waymark signature.) The
//! signature file names the authority's key id; a node pins the authority's
//! public key in its configuration and refuses a manifest signed by any
//! other key, so whoever can write to the node's disk or the broker still
//! cannot add an agency or a key.
//!
//! # Rotation and revocation
//! Each agency lists every key it has had, each valid over
//! `[valid_from, valid_until)`. Rotating means adding the new key and
//! closing the old one's window; revoking an agency (`status = "revoked"`,
//! `since`) closes every key's window at `since`, so anything it signed
//! afterwards fails verification at senders, receivers and the auditor
//! alike, while what it signed before stays verifiable. `suspended` does the
//! same from `since` on, with the intent of a later re-activation with new
//! keys.
//!
//! # Example
//! ```toml
//! format = "waymark.federation.v1"
//! federation = "bg-nrm"
//! issued_at = 2026-11-23T10:00:00Z
//!
//! [[agency]]
//! id = "police-sofia"
//! kind = "police"
//! country = "BG"
//! status = "active"
//! [[agency.key]]
//! public_key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
//! valid_from = 2026-01-01T00:00:00Z
//! [[agency.encryption_key]]
//! public_key = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
//! valid_from = 2026-01-01T00:00:00Z
//! ```
//!
//! `encryption_key` lists the agency's X25519 keys (HPKE, see
//! [`crate::seal`]): senders seal personal data only to the key valid when
//! they send, so rotating an encryption key (and destroying the old secret
//! once nothing sealed to it is still in transit) bounds how long
//! intercepted ciphertext stays openable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use toml::value::{Date, Datetime, Offset, Time};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

use crate::envelope::pae;
use crate::keyring::TrustedKey;
use crate::keys::{AgencyKey, KeyId};
use crate::seal::{RecipientKey, encryption_key_id};

/// The `format` line every manifest carries.
pub const MANIFEST_FORMAT: &str = "waymark.federation.v1";
/// The payload type bound into the manifest signature.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.waymark.federation-manifest.v1+toml";
const SIG_HEADER: &str = "waymark-federation-signature v1";

/// A federation manifest, as read from (or written to) TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The federation's name (a label, e.g. `bg-nrm`).
    pub federation: String,
    /// When the authority issued this version.
    pub issued_at: Datetime,
    /// The member agencies.
    #[serde(rename = "agency", default)]
    pub agencies: Vec<ManifestAgency>,
}

/// One member agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAgency {
    /// Its id.
    pub id: AgencyId,
    /// Its kind.
    pub kind: AgencyKind,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Whether it may act.
    pub status: Status,
    /// From when a `suspended` or `revoked` status applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Datetime>,
    /// Every signing key it has had.
    #[serde(rename = "key", default)]
    pub keys: Vec<ManifestKey>,
    /// Every X25519 encryption key it has had (`public_key` is the 32-byte
    /// X25519 public key in hex): personal data is sealed to the one valid
    /// when it is sent. An agency without one cannot be sent personal data.
    #[serde(
        rename = "encryption_key",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub encryption_keys: Vec<ManifestKey>,
}

/// Membership status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A member in good standing.
    Active,
    /// Temporarily barred from `since`.
    Suspended,
    /// Permanently barred from `since`.
    Revoked,
}

/// One signing key of an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestKey {
    /// The Ed25519 public key, 64 lowercase hex digits.
    pub public_key: String,
    /// First moment it may sign.
    pub valid_from: Datetime,
    /// End of validity (exclusive); absent while current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Datetime>,
}

/// A manifest that parsed, passed every check and whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    /// The manifest as written.
    pub manifest: Manifest,
    /// The members with decoded keys, revocation applied to the windows.
    pub members: Vec<Member>,
}

/// A member agency with the keys it may sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: AgencyId,
    /// Its kind.
    pub kind: AgencyKind,
    /// Its country code.
    pub country: String,
    /// Its status.
    pub status: Status,
    /// Its keys with validity windows (closed at `since` when not active).
    pub keys: Vec<TrustedKey>,
    /// Its encryption keys with validity windows (closed at `since` when
    /// not active).
    pub encryption_keys: Vec<RecipientKey>,
}

/// Reading, checking or verifying a manifest failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or does not have the manifest's shape.
    #[error("{path}: not a federation manifest: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is wrong.
    #[error("{path}: {at}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where (e.g. `agency[2].key[0].public_key`).
        at: String,
        /// What is wrong.
        message: String,
    },
    /// The signature file is missing, malformed, by another key or does not verify.
    #[error("{path}: {message}")]
    Signature {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// An empty manifest issued now.
    pub fn new(federation: &str) -> Self {
        Self {
            format: MANIFEST_FORMAT.to_owned(),
            federation: federation.to_owned(),
            issued_at: datetime(Timestamp::now()),
            agencies: Vec::new(),
        }
    }

    /// Adds an active member with one key valid from `from`.
    pub fn add(
        &mut self,
        id: AgencyId,
        kind: AgencyKind,
        country: &str,
        key: &VerifyingKey,
        from: Timestamp,
    ) {
        self.agencies.push(ManifestAgency {
            id,
            kind,
            country: country.to_owned(),
            status: Status::Active,
            since: None,
            keys: vec![ManifestKey {
                public_key: hex::encode(key.as_bytes()),
                valid_from: datetime(from),
                valid_until: None,
            }],
            encryption_keys: Vec::new(),
        });
    }

    /// Lists the X25519 public key `public` as an encryption key of `id`,
    /// valid from `from`. Returns false if `id` is not a member.
    pub fn add_encryption_key(
        &mut self,
        id: &AgencyId,
        public: &[u8; 32],
        from: Timestamp,
    ) -> bool {
        let Some(a) = self.agencies.iter_mut().find(|a| &a.id == id) else {
            return false;
        };
        a.encryption_keys.push(ManifestKey {
            public_key: hex::encode(public),
            valid_from: datetime(from),
            valid_until: None,
        });
        true
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# {e}\n"));
        format!("# Waymark federation manifest. Signed: see the .sig file beside it.\n{body}")
    }

    /// Checks every value and decodes the keys. `path` labels errors.
    ///
    /// # Errors
    /// [`ManifestError::Invalid`] naming the first wrong value.
    pub fn check(self, path: &Path) -> Result<VerifiedManifest, ManifestError> {
        let bad = |at: String, message: String| ManifestError::Invalid {
            path: path.to_owned(),
            at,
            message,
        };
        if self.format != MANIFEST_FORMAT {
            return Err(bad(
                "format".into(),
                format!("is {:?}, expected {MANIFEST_FORMAT:?}", self.format),
            ));
        }
        to_timestamp(&self.issued_at).map_err(|m| bad("issued_at".into(), m))?;
        let mut ids = HashSet::new();
        let mut seen_keys = HashSet::new();
        let mut members = Vec::new();
        for (i, a) in self.agencies.iter().enumerate() {
            let at = |f: &str| format!("agency[{i}] ({}).{f}", a.id);
            if !ids.insert(a.id.clone()) {
                return Err(bad(at("id"), "listed twice".into()));
            }
            if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(
                    at("country"),
                    format!("{:?} is not an ISO 3166-1 alpha-2 code", a.country),
                ));
            }
            let since = match (a.status, &a.since) {
                (Status::Active, None) => None,
                (Status::Active, Some(_)) => {
                    return Err(bad(at("since"), "only for suspended or revoked".into()));
                }
                (_, None) => {
                    return Err(bad(
                        at("since"),
                        "required when suspended or revoked".into(),
                    ));
                }
                (_, Some(s)) => Some(to_timestamp(s).map_err(|m| bad(at("since"), m))?),
            };
            if a.keys.is_empty() {
                return Err(bad(at("key"), "at least one key is required".into()));
            }
            let mut keys = Vec::new();
            for (j, k) in a.keys.iter().enumerate() {
                let kat = |f: &str| at(&format!("key[{j}].{f}"));
                let key = decode_key(&k.public_key).map_err(|m| bad(kat("public_key"), m))?;
                if !seen_keys.insert(key.to_bytes()) {
                    return Err(bad(kat("public_key"), "listed twice".into()));
                }
                let from = to_timestamp(&k.valid_from).map_err(|m| bad(kat("valid_from"), m))?;
                let until = k
                    .valid_until
                    .as_ref()
                    .map(to_timestamp)
                    .transpose()
                    .map_err(|m| bad(kat("valid_until"), m))?;
                if until.is_some_and(|u| u <= from) {
                    return Err(bad(kat("valid_until"), "must be after valid_from".into()));
                }
                let until = match (until, since) {
                    (Some(u), Some(s)) => Some(u.min(s)),
                    (u, s) => u.or(s),
                };
                keys.push(TrustedKey {
                    key,
                    valid_from: from,
                    valid_until: until,
                });
            }
            let mut encryption_keys = Vec::new();
            for (j, k) in a.encryption_keys.iter().enumerate() {
                let kat = |f: &str| at(&format!("encryption_key[{j}].{f}"));
                let mut public = [0u8; 32];
                hex::decode_to_slice(k.public_key.trim(), &mut public).map_err(|_| {
                    bad(
                        kat("public_key"),
                        "not 64 hex digits (a 32-byte X25519 public key)".into(),
                    )
                })?;
                if !seen_keys.insert(public) {
                    return Err(bad(kat("public_key"), "listed twice".into()));
                }
                let (from, until) = window(k).map_err(|(f, m)| bad(kat(f), m))?;
                encryption_keys.push(RecipientKey {
                    id: encryption_key_id(&public),
                    public,
                    valid_from: from,
                    valid_until: close(until, since),
                });
            }
            members.push(Member {
                id: a.id.clone(),
                kind: a.kind,
                country: a.country.clone(),
                status: a.status,
                keys,
                encryption_keys,
            });
        }
        Ok(VerifiedManifest {
            manifest: self,
            members,
        })
    }

    /// Writes `path` and its signature file `path.sig`, signed by `authority`.
    ///
    /// # Errors
    /// [`ManifestError::Io`] if a file cannot be written.
    pub fn write_signed(&self, path: &Path, authority: &AgencyKey) -> Result<(), ManifestError> {
        let text = self.to_toml();
        let sig = authority.sign(&pae(MANIFEST_PAYLOAD_TYPE, text.as_bytes()));
        let sig_text = format!(
            "{SIG_HEADER}\nkey-id: {}\nsignature: {}\n",
            authority.key_id(),
            hex::encode(sig.to_bytes())
        );
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| ManifestError::Io { path: p, source }
        };
        std::fs::write(path, text).map_err(io(path))?;
        let sp = signature_path(path);
        std::fs::write(&sp, sig_text).map_err(io(&sp))
    }
}

/// The signature file of the manifest at `path`: `path` + `.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Reads the manifest at `path`, verifies its signature file against the
/// pinned `authority` key, then checks it.
///
/// # Errors
/// [`ManifestError`] naming the file and what is wrong; nothing of an
/// unverified manifest is ever returned.
pub fn load_verified(
    path: &Path,
    authority: &VerifyingKey,
) -> Result<VerifiedManifest, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Io {
        path: path.to_owned(),
        source,
    })?;
    let sp = signature_path(path);
    let sig_text = std::fs::read_to_string(&sp).map_err(|source| ManifestError::Io {
        path: sp.clone(),
        source,
    })?;
    let bad = |message: String| ManifestError::Signature {
        path: sp.clone(),
        message,
    };
    let mut lines = sig_text.lines();
    if lines.next() != Some(SIG_HEADER) {
        return Err(bad(format!("first line is not {SIG_HEADER:?}")));
    }
    let key_id = lines
        .next()
        .and_then(|l| l.strip_prefix("key-id: "))
        .ok_or_else(|| bad("second line is not \"key-id: ...\"".into()))?;
    let sig_hex = lines
        .next()
        .and_then(|l| l.strip_prefix("signature: "))
        .ok_or_else(|| bad("third line is not \"signature: ...\"".into()))?;
    let want = KeyId::of(authority);
    if key_id.trim() != want.as_str() {
        return Err(bad(format!(
            "signed by {}, but this node trusts only the federation authority {want}",
            key_id.trim()
        )));
    }
    let mut raw = [0u8; 64];
    hex::decode_to_slice(sig_hex.trim(), &mut raw)
        .map_err(|_| bad("signature is not 128 hex digits".into()))?;
    authority
        .verify_strict(
            &pae(MANIFEST_PAYLOAD_TYPE, &bytes),
            &Signature::from_bytes(&raw),
        )
        .map_err(|_| {
            bad(format!(
                "the signature does not verify: {} was changed after signing, or the signature is not the authority's",
                path.display()
            ))
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ManifestError::Syntax {
        path: path.to_owned(),
        message: "not UTF-8".into(),
    })?;
    let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    manifest.check(path)
}

/// A key's `[valid_from, valid_until)`, or (field, message) of the bad value.
fn window(k: &ManifestKey) -> Result<(Timestamp, Option<Timestamp>), (&'static str, String)> {
    let from = to_timestamp(&k.valid_from).map_err(|m| ("valid_from", m))?;
    let until = k
        .valid_until
        .as_ref()
        .map(to_timestamp)
        .transpose()
        .map_err(|m| ("valid_until", m))?;
    if until.is_some_and(|u| u <= from) {
        return Err(("valid_until", "must be after valid_from".into()));
    }
    Ok((from, until))
}

/// A key's end of validity, closed at the agency's `since` when not active.
fn close(until: Option<Timestamp>, since: Option<Timestamp>) -> Option<Timestamp> {
    match (until, since) {
        (Some(u), Some(s)) => Some(u.min(s)),
        (u, s) => u.or(s),
    }
}

/// Decodes a 64-hex-digit Ed25519 public key.
///
/// # Errors
/// A message saying what is wrong.
pub fn decode_key(text: &str) -> Result<VerifyingKey, String> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut raw)
        .map_err(|_| "not 64 hex digits (a 32-byte Ed25519 public key)".to_owned())?;
    VerifyingKey::from_bytes(&raw).map_err(|_| "not a valid Ed25519 public key".to_owned())
}

/// A TOML offset date-time (UTC) for `t`.
pub fn datetime(t: Timestamp) -> Datetime {
    let s = t.to_string();
    s.parse().unwrap_or(Datetime {
        date: None,
        time: None,
        offset: None,
    })
}

/// The instant of a TOML date-time, which must carry a full date, a time
/// and an offset (a local time is ambiguous across a federation).
///
/// # Errors
/// A message saying what is missing.
pub fn to_timestamp(d: &Datetime) -> Result<Timestamp, String> {
    let (Some(Date { year, month, day }), Some(time), Some(offset)) = (d.date, d.time, d.offset)
    else {
        return Err(format!(
            "{d} must be a full date-time with an offset, e.g. 2026-11-23T10:00:00Z"
        ));
    };
    let Time {
        hour,
        minute,
        second,
        nanosecond,
    } = time;
    let t = Timestamp::from_utc(
        i64::from(year),
        u32::from(month),
        u32::from(day),
        (u32::from(hour), u32::from(minute), u32::from(second)),
        nanosecond / 1_000_000,
    )
    .ok_or_else(|| format!("{d} is not a valid date-time"))?;
    let shift = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes) * 60_000,
    };
    Ok(Timestamp(t.0 - shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> (PathBuf, AgencyKey, AgencyKey) {
        let authority = AgencyKey::generate();
        let agency = AgencyKey::generate();
        let mut m = Manifest::new("test");
        m.add(
            AgencyId::new("police-a").unwrap(),
            AgencyKind::Police,
            "BG",
            &agency.public_key(),
            Timestamp(0),
        );
        let p = dir.join("federation.toml");
        m.write_signed(&p, &authority).unwrap();
        (p, authority, agency)
    }

    #[test]
    fn signed_manifest_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let (p, authority, agency) = sample(d.path());
        let v = load_verified(&p, &authority.public_key()).unwrap();
        assert_eq!(v.members.len(), 1);
        assert_eq!(v.members[0].keys[0].key, agency.public_key());
        assert_eq!(v.members[0].keys[0].valid_until, None);
    }

    #[test]
    fn any_change_or_other_authority_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (p, authority, _) = sample(d.path());
        let other = AgencyKey::generate();
        let e = load_verified(&p, &other.public_key()).unwrap_err();
        assert!(
            e.to_string()
                .contains("trusts only the federation authority"),
            "{e}"
        );
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("police-a", "police-b")).unwrap();
        let e = load_verified(&p, &authority.public_key()).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        std::fs::remove_file(signature_path(&p)).unwrap();
        assert!(matches!(
            load_verified(&p, &authority.public_key()),
            Err(ManifestError::Io { .. })
        ));
    }

    #[test]
    fn revocation_closes_every_key_window() {
        let d = tempfile::tempdir().unwrap();
        let authority = AgencyKey::generate();
        let k = AgencyKey::generate();
        let mut m = Manifest::new("test");
        m.add(
            AgencyId::new("ngo-a").unwrap(),
            AgencyKind::Ngo,
            "BG",
            &k.public_key(),
            Timestamp(0),
        );
        m.agencies[0].status = Status::Revoked;
        m.agencies[0].since = Some("2026-11-01T00:00:00Z".parse().unwrap());
        let p = d.path().join("f.toml");
        m.write_signed(&p, &authority).unwrap();
        let v = load_verified(&p, &authority.public_key()).unwrap();
        let until = v.members[0].keys[0].valid_until.unwrap();
        assert_eq!(until.to_string(), "2026-11-01T00:00:00.000Z");
        assert!(!v.members[0].keys[0].valid_at(until));
    }

    #[test]
    fn bad_values_are_located() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                "country = \"BG\"",
                "country = \"bg\"",
                "agency[0] (police-a).country",
            ),
            (
                "status = \"active\"",
                "status = \"revoked\"",
                "agency[0] (police-a).since",
            ),
        ];
        for (from, to, at) in cases {
            let (p, authority, _) = sample(d.path());
            let text = std::fs::read_to_string(&p).unwrap().replace(from, to);
            let m: Manifest = toml::from_str(&text).unwrap();
            let p2 = d.path().join("g.toml");
            m.write_signed(&p2, &authority).unwrap();
            let e = load_verified(&p2, &authority.public_key()).unwrap_err();
            assert!(e.to_string().contains(at), "{e}");
            std::fs::remove_file(&p).unwrap();
            std::fs::remove_file(signature_path(&p)).unwrap();
        }
        let t: Datetime = "2026-11-23T12:00:00+02:00".parse().unwrap();
        assert_eq!(
            to_timestamp(&t).unwrap().to_string(),
            "2026-11-23T10:00:00.000Z"
        );
        let local: Datetime = "2026-11-23T12:00:00".parse().unwrap();
        assert!(to_timestamp(&local).is_err());
    }
}
