//! Agency signing keys, key ids and the key file format.
//!
//! # Key file format (version 1)
//!
//! A UTF-8 text file, mode 0600, of exactly three lines:
//!
//! ```text
//! waymark-ed25519-secret-key v1
//! key-id: ed25519:<32 lowercase hex digits>
//! secret: <64 lowercase hex digits: the 32-byte Ed25519 seed>
//! ```
//!
//! The `key-id` line lets an operator see which key a file holds without
//! tools; on load it must match the id derived from the secret, which catches
//! a damaged or hand-edited file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// First line of a version 1 key file.
const KEY_FILE_HEADER: &str = "waymark-ed25519-secret-key v1";

/// The identifier of an Ed25519 public key: `"ed25519:"` followed by the
/// lowercase hex of the first 16 bytes of SHA-256 over the 32-byte key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// A string is not a well-formed key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key id {0:?}: expected \"ed25519:\" and 32 lowercase hex digits")]
pub struct KeyIdError(pub String);

impl KeyId {
    /// The prefix naming the algorithm.
    pub const PREFIX: &'static str = "ed25519:";

    /// Derives the id of a public key.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        Self(format!("{}{}", Self::PREFIX, hex::encode(&digest[..16])))
    }

    /// Parses a key id as found in a `Signature.key_id`.
    ///
    /// # Errors
    /// [`KeyIdError`] unless `s` is the prefix followed by exactly 32 lowercase
    /// hex digits.
    pub fn parse(s: &str) -> Result<Self, KeyIdError> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == 32
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyIdError(s.chars().take(80).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reading or writing a key file failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be created, written or synced.
    #[error("writing key file {path}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("reading key file {path}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a version 1 key file.
    #[error("key file {path} is malformed: {reason}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never the secret).
        reason: &'static str,
    },
}

/// An agency's Ed25519 signing key with its precomputed [`KeyId`].
///
/// The secret is zeroized on drop (ed25519-dalek's `zeroize` feature) and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct AgencyKey {
    signing: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for AgencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgencyKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AgencyKey {
    /// Generates a fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Builds a key from its 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let key_id = KeyId::of(&signing.verifying_key());
        Self { signing, key_id }
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The key's id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Signs raw bytes. Callers normally use [`crate::sign_envelope`], which
    /// signs the PAE of a typed payload instead.
    pub fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        self.signing.sign(message)
    }

    /// Renders the version 1 key file text. Contains the secret.
    pub fn to_key_file_text(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\nkey-id: {}\nsecret: {}\n",
            self.key_id,
            hex::encode(self.signing.to_bytes())
        )
    }

    /// Parses version 1 key file text; `path` only labels errors.
    ///
    /// # Errors
    /// [`KeyFileError::Malformed`] if a line is missing or wrong, the secret is
    /// not 64 hex digits, or the key id does not match the secret.
    pub fn from_key_file_text(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let bad = |reason| KeyFileError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(bad("first line is not \"waymark-ed25519-secret-key v1\""));
        }
        let id = lines
            .next()
            .and_then(|l| l.strip_prefix("key-id: "))
            .ok_or_else(|| bad("second line is not \"key-id: ...\""))?;
        let secret = lines
            .next()
            .and_then(|l| l.strip_prefix("secret: "))
            .ok_or_else(|| bad("third line is not \"secret: ...\""))?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(bad("unexpected text after the secret"));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(secret.trim(), &mut seed)
            .map_err(|_| bad("secret is not 64 hex digits"))?;
        let key = Self::from_seed(&seed);
        if key.key_id.as_str() != id.trim() {
            return Err(bad("key-id does not match the secret"));
        }
        Ok(key)
    }

    /// Writes a new key file with mode 0600 and syncs it and its directory.
    /// Never overwrites: an existing file is an error, so a key cannot be lost
    /// by a mistyped command.
    ///
    /// # Errors
    /// [`KeyFileError::Write`] if the file exists or any write or sync fails.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        write_secret_file(path, &self.to_key_file_text())
    }

    /// Loads a key file written by [`AgencyKey::save`].
    ///
    /// # Errors
    /// [`KeyFileError::Read`] if the file cannot be read,
    /// [`KeyFileError::Malformed`] if its content is wrong.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_key_file_text(&text, path)
    }
}

/// Writes secret `text` to a new file with mode 0600 and syncs it and its
/// directory. Never overwrites an existing file.
pub(crate) fn write_secret_file(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    /// RFC 8032 §7.1, TEST 2 (one-byte message 0x72).
    #[test]
    fn rfc8032_test_2() {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            &mut seed,
        )
        .unwrap();
        let key = AgencyKey::from_seed(&seed);
        assert_eq!(
            hex::encode(key.public_key().as_bytes()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig = key.sign(&[0x72]);
        assert_eq!(
            hex::encode(sig.to_bytes()),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        key.public_key().verify_strict(&[0x72], &sig).unwrap();
        assert!(key.public_key().verify(&[0x73], &sig).is_err());
    }

    #[test]
    fn key_id_is_prefix_and_16_hash_bytes() {
        let key = AgencyKey::generate();
        let id = key.key_id().as_str();
        assert!(id.starts_with("ed25519:"));
        assert_eq!(id.len(), 8 + 32);
        let digest = Sha256::digest(key.public_key().as_bytes());
        assert_eq!(&id[8..], hex::encode(&digest[..16]));
        assert_eq!(KeyId::parse(id).unwrap(), *key.key_id());
        assert!(KeyId::parse("ed25519:ABCDEF").is_err());
        assert!(KeyId::parse(&id.to_uppercase()).is_err());
    }

    #[test]
    fn key_file_round_trip_with_0600_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency.key");
        let key = AgencyKey::generate();
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = AgencyKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        assert!(matches!(key.save(&path), Err(KeyFileError::Write { .. })));
        assert!(!format!("{key:?}").contains(&hex::encode(key.signing.to_bytes())));
    }

    #[test]
    fn tampered_key_file_is_rejected() {
        let key = AgencyKey::generate();
        let text = key.to_key_file_text();
        let other = AgencyKey::generate();
        let swapped = text.replace(key.key_id().as_str(), other.key_id().as_str());
        let p = Path::new("k");
        assert!(matches!(
            AgencyKey::from_key_file_text(&swapped, p),
            Err(KeyFileError::Malformed {
                reason: "key-id does not match the secret",
                ..
            })
        ));
        assert!(AgencyKey::from_key_file_text("nonsense", p).is_err());
        assert!(AgencyKey::from_key_file_text(&text.replace("secret: ", "secret: zz"), p).is_err());
    }
}
