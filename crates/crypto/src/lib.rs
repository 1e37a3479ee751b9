//! Waymark's cryptography: agency signing keys and DSSE-style signed envelopes.
//!
//! Every agency signs what it records with one current Ed25519 key. A key is
//! named by its [`KeyId`] (`"ed25519:"` + lowercase hex of the first 16 bytes of
//! SHA-256 over the 32-byte public key, as `proto/waymark/v1/envelope.proto`
//! fixes). Payloads travel in an [`Envelope`](waymark_proto::v1::Envelope)
//! whose signatures cover DSSE's pre-authentication encoding ([`pae`]), so the
//! payload type is bound into every signature.
//!
//! Modules, one noun each: [`keys`] (key material, key ids, key files),
//! [`envelope`] (PAE and signing), [`keyring`] (verification against trusted
//! keys with validity windows, single and batched), [`manifest`] (the signed
//! federation manifest: members, keys, rotation and revocation). Encryption to a recipient
//! agency (HPKE) will be added as its own module.
//!
//! # Invariants
//! - Signed bytes are never re-encoded: [`sign_envelope`] takes the payload
//!   bytes and keeps them verbatim; verification reads them as they are.
//! - Verification always uses `verify_strict` (or the batch equation followed
//!   by `verify_strict` on each signature when locating a failure), which
//!   rejects malleable signatures and weak public keys.
//! - A signature by a key outside its validity window is rejected, as is any
//!   signature over an unexpected payload type.
//! - Secret key files are created with mode 0600 and never overwritten.

#![forbid(unsafe_code)]

pub mod envelope;
pub mod keyring;
pub mod keys;
pub mod manifest;
pub mod seal;
mod time;

pub use envelope::{pae, sign_envelope};
pub use keyring::{BatchItem, BatchVerifyError, KeyRing, KeyRingError, TrustedKey, VerifyError};
pub use keys::{AgencyKey, KeyFileError, KeyId, KeyIdError};
pub use time::{proto_from_timestamp, timestamp_from_proto};
