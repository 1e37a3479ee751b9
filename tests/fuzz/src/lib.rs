//! Shared fixtures of the fuzz targets: a fixed federation of three agencies
//! with deterministic keys (the seed corpus in `seeds/` is signed with them,
//! so seeds pass signature checks and reach the deeper stages), and the
//! inbox's stateless screening steps in the bus's order.
//!
//! Keys are derived from constant seeds: this is test material, never a
//! deployment key.

#![forbid(unsafe_code)]

use prost::Message;
use waymark_bus::Directory;
use waymark_crypto::{AgencyKey, KeyRing, TrustedKey, timestamp_from_proto};
use waymark_policy::{WireEvent, event_from_proto};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{Envelope, Event};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

/// The fixed federation: id, kind, key seed byte.
pub const AGENCIES: &[(&str, AgencyKind, u8)] = &[
    ("bg-police-sofia", AgencyKind::Police, 1),
    ("bg-shelter-sofia", AgencyKind::Shelter, 2),
    ("bg-shelter-varna", AgencyKind::Shelter, 3),
];

/// The agency the screened messages are delivered to.
pub const ME: &str = "bg-shelter-sofia";

/// The signing key of agency number `seed` (see [`AGENCIES`]).
pub fn key(seed: u8) -> AgencyKey {
    AgencyKey::from_seed(&[seed; 32])
}

/// The signing key of `agency`, if it is one of [`AGENCIES`].
pub fn key_of(agency: &str) -> Option<AgencyKey> {
    AGENCIES
        .iter()
        .find(|(id, _, _)| *id == agency)
        .map(|(_, _, s)| key(*s))
}

fn trusted(k: &AgencyKey) -> TrustedKey {
    TrustedKey {
        key: k.public_key(),
        valid_from: Timestamp::from_millis(0),
        valid_until: None,
    }
}

/// The directory of [`AGENCIES`].
pub fn directory() -> Directory {
    let mut d = Directory::new();
    for (id, kind, seed) in AGENCIES {
        d.insert(
            AgencyId::new(id).expect("fixed id"),
            *kind,
            [trusted(&key(*seed))],
        );
    }
    d
}

/// A key ring holding every key of [`AGENCIES`].
pub fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    for (_, _, seed) in AGENCIES {
        r.insert(trusted(&key(*seed)));
    }
    r
}

/// What screening found (only for assertions in the targets).
#[derive(Debug)]
pub enum Screened {
    /// Refused at the named step.
    Refused(&'static str),
    /// Authentic and well-formed.
    Passed(Box<WireEvent>),
}

/// The inbox's stateless checks (crates/bus/src/check.rs `incoming`), in its
/// order, through the same public functions: envelope decode → payload type
/// → event decode → subject parse → signature by a directory key valid at
/// `occurred_at` → signer is the subject's sender and `sender_id` → field
/// shape.
pub fn screen(directory: &Directory, subject: &str, bytes: &[u8], max: usize) -> Screened {
    use Screened::Refused;
    if bytes.len() > max {
        return Refused("oversized");
    }
    let Ok(env) = Envelope::decode(bytes) else {
        return Refused("envelope");
    };
    if env.payload_type != PAYLOAD_TYPE_EVENT {
        return Refused("payload_type");
    }
    let Ok(ev) = Event::decode(env.payload.as_slice()) else {
        return Refused("event");
    };
    let Some(waymark_bus::subjects::Subject::Event { sender, .. }) =
        waymark_bus::subjects::parse(subject)
    else {
        return Refused("subject");
    };
    let Some(at) = ev.occurred_at.as_ref().map(timestamp_from_proto) else {
        return Refused("occurred_at");
    };
    let Ok(owner) = directory.verify(&env, PAYLOAD_TYPE_EVENT, at) else {
        return Refused("signature");
    };
    if owner != sender || ev.sender_id != owner.as_str() {
        return Refused("sender");
    }
    match event_from_proto(&ev) {
        Ok(w) => Screened::Passed(Box::new(w)),
        Err(_) => Refused("fields"),
    }
}

/// Splits a fuzz input into a subject (length in the first byte) and the
/// message bytes.
pub fn split_subject(data: &[u8]) -> Option<(&str, &[u8])> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n % 128).min(rest.len());
    let (s, body) = rest.split_at(n);
    Some((std::str::from_utf8(s).ok()?, body))
}

/// The X25519 key of [`ME`], fixed (test material): the `sealed_open`
/// seeds are sealed to it.
pub fn my_encryption_key() -> waymark_crypto::seal::EncryptionKey {
    waymark_crypto::seal::EncryptionKey::from_bytes(&[7; 32]).expect("an X25519 secret")
}

/// [`ME`]'s handling of sealed data for the fuzz target: opens with
/// [`my_encryption_key`] exactly as an agency does, keeps nothing.
pub struct FuzzSealing(pub waymark_crypto::seal::EncryptionKey);

impl waymark_bus::Sealing for FuzzSealing {
    fn ciphertexts(&self, _: &Event) -> Result<Vec<Vec<u8>>, String> {
        Ok(Vec::new())
    }
    fn open(&self, event: &Event, index: usize, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        waymark_bus::sealing::open_section(&self.0, event, index, ciphertext)
    }
    fn keep(&self, _: &Event, _: &waymark_bus::Opened) -> Result<(), String> {
        Ok(())
    }
}

/// Splits a `sealed_open` input: a 2-byte big-endian length, that many
/// bytes of `Event` encoding, then header values separated by `0x00`.
pub fn split_sealed(data: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_be_bytes(*len));
    if rest.len() < n {
        return None;
    }
    let (event, values) = rest.split_at(n);
    let values = if values.is_empty() {
        Vec::new()
    } else {
        values.split(|b| *b == 0).collect()
    };
    Some((event, values))
}
