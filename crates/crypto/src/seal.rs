//! Encryption of personal data: sealed to a recipient agency in transit
//! (HPKE, RFC 9180) and boxed under a per-case key at rest.
//!
//! # In transit: [`seal`] / [`open`]
//! HPKE base mode, suite [`SUITE`]: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305 (the `hpke` crate, rust-hpke). The `info` string is the
//! fixed [`INFO`] (domain separation and protocol version); the associated
//! data is what the caller binds the ciphertext to (the event id, so a
//! sealed section cannot be moved into another event). Each agency has an
//! X25519 [`EncryptionKey`] besides its Ed25519 signing key; its public half
//! is listed in the federation manifest.
//!
//! # At rest: [`CaseBox`]
//! ChaCha20-Poly1305 under a random 32-byte key per case, with a random
//! 96-bit nonce per value (stored in front of the ciphertext) and the case
//! id as associated data. The key lives apart from the data (see the
//! agency's case-key directory), so destroying it erases every copy of the
//! data, including those in old segments of a log-structured store.
//!
//! Invariants: no secret is ever printed by `Debug`; key files are written
//! 0600 and never overwritten; decryption failures say nothing about the
//! plaintext.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305 as Box20, Key, Nonce};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::keys::{KeyFileError, write_secret_file};

/// The HPKE suite, as named in `SealedData.suite`.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305";

/// The HPKE `info` of every Waymark seal.
pub const INFO: &[u8] = b"waymark.v1 sealed personal data";

const KEY_FILE_HEADER: &str = "waymark-x25519-secret-key v1";

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;

/// Sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A public key is not 32 bytes of a valid X25519 point.
    #[error("not an X25519 public key")]
    BadPublicKey,
    /// The encapsulated key is malformed.
    #[error("the encapsulated key is malformed")]
    BadEncapsulatedKey,
    /// Encryption failed (should not happen with valid keys).
    #[error("sealing failed")]
    Seal,
    /// Wrong key, wrong associated data, or altered bytes.
    #[error("the sealed data does not open with this key and associated data")]
    Open,
}

/// The id of an X25519 public key: `"x25519:"` and the first 16 bytes of
/// its SHA-256, in hex (like the signing keys' [`crate::KeyId`]).
pub fn encryption_key_id(public: &[u8; 32]) -> String {
    format!("x25519:{}", hex::encode(&Sha256::digest(public)[..16]))
}

/// A recipient's X25519 public key as the federation manifest lists it,
/// with its validity window: senders seal only to a key valid at the time
/// they seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientKey {
    /// The 32-byte X25519 public key.
    pub public: [u8; 32],
    /// Its id ([`encryption_key_id`]).
    pub id: String,
    /// First moment data may be sealed to it.
    pub valid_from: waymark_types::Timestamp,
    /// End of validity (exclusive); `None` while current.
    pub valid_until: Option<waymark_types::Timestamp>,
}

impl RecipientKey {
    /// Whether data may be sealed to this key at `at`.
    pub fn valid_at(&self, at: waymark_types::Timestamp) -> bool {
        at >= self.valid_from && self.valid_until.is_none_or(|u| at < u)
    }
}

/// An agency's X25519 key for opening data sealed to it.
#[derive(Clone)]
pub struct EncryptionKey {
    secret: PrivateKey,
    public: [u8; 32],
    id: String,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let (secret, _) = Kem::gen_keypair(&mut rand::rngs::OsRng);
        Self::from_secret(secret)
    }

    /// The key with this 32-byte secret (as in a key file).
    ///
    /// # Errors
    /// [`SealError::BadPublicKey`] if the bytes are no X25519 secret.
    pub fn from_bytes(secret: &[u8; 32]) -> Result<Self, SealError> {
        PrivateKey::from_bytes(secret)
            .map(Self::from_secret)
            .map_err(|_| SealError::BadPublicKey)
    }

    fn from_secret(secret: PrivateKey) -> Self {
        let mut public = [0u8; 32];
        public.copy_from_slice(&Kem::sk_to_pk(&secret).to_bytes());
        let id = encryption_key_id(&public);
        Self { secret, public, id }
    }

    /// The public key (32 bytes), as listed in the manifest.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Opens what [`seal`] sealed to this key with associated data `aad`.
    ///
    /// # Errors
    /// [`SealError::BadEncapsulatedKey`] or [`SealError::Open`].
    pub fn open(
        &self,
        encapsulated: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated)
            .map_err(|_| SealError::BadEncapsulatedKey)?;
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.secret,
            &enc,
            INFO,
            ciphertext,
            aad,
        )
        .map_err(|_| SealError::Open)
    }

    /// The key file text. Contains the secret.
    pub fn to_key_file_text(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\nkey-id: {}\nsecret: {}\n",
            self.id,
            hex::encode(self.secret.to_bytes())
        )
    }

    /// Writes a new key file (0600, synced, never overwriting).
    ///
    /// # Errors
    /// [`KeyFileError::Write`] if the file exists or a write fails.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        write_secret_file(path, &self.to_key_file_text())
    }

    /// Loads a key file written by [`EncryptionKey::save`].
    ///
    /// # Errors
    /// [`KeyFileError::Read`] or [`KeyFileError::Malformed`].
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |reason| KeyFileError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(bad("first line is not \"waymark-x25519-secret-key v1\""));
        }
        let id = lines
            .next()
            .and_then(|l| l.strip_prefix("key-id: "))
            .ok_or_else(|| bad("second line is not \"key-id: ...\""))?;
        let secret = lines
            .next()
            .and_then(|l| l.strip_prefix("secret: "))
            .ok_or_else(|| bad("third line is not \"secret: ...\""))?;
        let mut raw = [0u8; 32];
        hex::decode_to_slice(secret.trim(), &mut raw)
            .map_err(|_| bad("secret is not 64 hex digits"))?;
        let key = Self::from_bytes(&raw).map_err(|_| bad("secret is not an X25519 key"))?;
        if key.id != id.trim() {
            return Err(bad("key-id does not match the secret"));
        }
        Ok(key)
    }
}

/// A sealed section: the HPKE encapsulated key and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// HPKE `enc` (32 bytes for X25519).
    pub encapsulated_key: Vec<u8>,
    /// AEAD ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

/// Seals `plaintext` to the X25519 public key `recipient`, bound to `aad`.
///
/// # Errors
/// [`SealError::BadPublicKey`] or [`SealError::Seal`].
pub fn seal(recipient: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
    let pk = PublicKey::from_bytes(recipient).map_err(|_| SealError::BadPublicKey)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        INFO,
        plaintext,
        aad,
        &mut rand::rngs::OsRng,
    )
    .map_err(|_| SealError::Seal)?;
    Ok(Sealed {
        encapsulated_key: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

/// A per-case key for data at rest.
pub struct CaseBox {
    cipher: Box20,
}

impl fmt::Debug for CaseBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaseBox(..)")
    }
}

/// Bytes of a nonce stored in front of each boxed value.
const NONCE: usize = 12;

impl CaseBox {
    /// A fresh random key, returned with its bytes for storing.
    pub fn generate() -> ([u8; 32], Self) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let b = Self::new(&key);
        (key, b)
    }

    /// The box of a stored key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Box20::new(Key::from_slice(key)),
        }
    }

    /// Encrypts `plaintext` bound to `aad` (the case id): nonce ‖ ciphertext.
    ///
    /// # Errors
    /// [`SealError::Seal`].
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what [`CaseBox::encrypt`] made with the same `aad`.
    ///
    /// # Errors
    /// [`SealError::Open`] for a wrong key or aad or altered bytes.
    pub fn decrypt(&self, aad: &[u8], boxed: &[u8]) -> Result<Vec<u8>, SealError> {
        if boxed.len() < NONCE {
            return Err(SealError::Open);
        }
        let (nonce, ct) = boxed.split_at(NONCE);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_opens_only_with_the_key_and_aad() {
        let bob = EncryptionKey::generate();
        let eve = EncryptionKey::generate();
        let s = seal(&bob.public_key(), b"event-1", b"Canary Name").unwrap();
        assert!(!s.ciphertext.windows(6).any(|w| w == b"Canary"));
        assert_eq!(
            bob.open(&s.encapsulated_key, &s.ciphertext, b"event-1")
                .unwrap(),
            b"Canary Name"
        );
        assert_eq!(
            eve.open(&s.encapsulated_key, &s.ciphertext, b"event-1"),
            Err(SealError::Open)
        );
        assert_eq!(
            bob.open(&s.encapsulated_key, &s.ciphertext, b"event-2"),
            Err(SealError::Open)
        );
        let mut bad = s.ciphertext.clone();
        bad[0] ^= 1;
        assert_eq!(
            bob.open(&s.encapsulated_key, &bad, b"event-1"),
            Err(SealError::Open)
        );
        assert_eq!(
            bob.open(&[1, 2, 3], &s.ciphertext, b"event-1"),
            Err(SealError::BadEncapsulatedKey)
        );
        // Fresh ephemeral key each time.
        let again = seal(&bob.public_key(), b"event-1", b"Canary Name").unwrap();
        assert_ne!(again.encapsulated_key, s.encapsulated_key);
        assert_eq!(seal(&[0u8; 5], b"", b"x"), Err(SealError::BadPublicKey));
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("enc.key");
        let k = EncryptionKey::generate();
        k.save(&p).unwrap();
        assert!(k.save(&p).is_err(), "never overwritten");
        let back = EncryptionKey::load(&p).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        assert_eq!(back.key_id(), k.key_id());
        assert!(k.key_id().starts_with("x25519:") && k.key_id().len() == 7 + 32);
        assert!(!format!("{k:?}").contains(&hex::encode(k.secret.to_bytes())));
    }

    #[test]
    fn case_box_binds_the_case_and_the_key() {
        let (raw, b) = CaseBox::generate();
        let v = b.encrypt(b"case-a", b"Canary").unwrap();
        assert_eq!(
            CaseBox::new(&raw).decrypt(b"case-a", &v).unwrap(),
            b"Canary"
        );
        assert_eq!(b.decrypt(b"case-b", &v), Err(SealError::Open));
        let (_, other) = CaseBox::generate();
        assert_eq!(other.decrypt(b"case-a", &v), Err(SealError::Open));
        assert_eq!(b.decrypt(b"case-a", &v[..5]), Err(SealError::Open));
    }
}
