//! Personal data sealed to the recipient, carried **detached** from the
//! signed event.
//!
//! # Design
//! An event that shares personal data lists one `SealedData` section per
//! sealed blob in `Event.sealed`: the recipient's encryption key id, the
//! HPKE encapsulated key, the data categories and the SHA-256 of the
//! ciphertext, but never the ciphertext itself. The ciphertext travels
//! beside the envelope in the NATS message carrying the event, as header
//! `Waymark-Sealed-<i>` (standard base64), and is never journaled by anyone:
//! journals are kept for years and cannot be edited, so a ciphertext in a
//! journal could be opened by whoever holds the recipient's key for as long
//! as the journal exists, and no erasure could reach it. Detached, the
//! ciphertext lives only
//! - at the sender, under its own per-case key, until the event is receipted
//!   (so it can be published again), and
//! - in the broker's stream until the stream's `max_age` (ciphertext to the
//!   recipient's X25519 key; rotating encryption keys bounds how long it
//!   stays openable).
//!
//! The signature covers the digest, so a broker or a third agency that
//! swaps the header is caught: the recipient checks every detached
//! ciphertext against its digest before opening it, and quarantines the
//! event (reason `sealed_data`, receipted to the authentic sender) when one
//! is missing, altered, inline in the event, sealed to a key that is not
//! the recipient's, or does not open. Opened data is handed to the agency
//! ([`Sealing::keep`]) *before* the event is journaled; if keeping fails the
//! message is not acknowledged and comes again, so nothing is lost.
//!
//! The bus does not hold keys: the agency implements [`Sealing`] (its
//! encryption key, its per-case key store) and installs it with
//! [`crate::Bus::set_sealing`] before it serves requests.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message as _;
use sha2::{Digest, Sha256};
use waymark_crypto::seal::{EncryptionKey, SUITE};
use waymark_proto::v1::{Event, PersonalData};

/// The header carrying the detached ciphertext of section `i`.
pub fn header_name(i: usize) -> String {
    format!("Waymark-Sealed-{i}")
}

/// What the agency does with sealed personal data, for the bus.
pub trait Sealing: Send + Sync + 'static {
    /// The detached ciphertexts of `event`'s sealed sections, in section
    /// order, to publish beside it. An error (e.g. the data was erased since)
    /// publishes the event without them; the recipient then quarantines it
    /// and says so in its receipt.
    ///
    /// # Errors
    /// A message for the log (no personal data).
    fn ciphertexts(&self, event: &Event) -> Result<Vec<Vec<u8>>, String>;

    /// Opens section `index` of a received `event` addressed to this agency,
    /// its detached `ciphertext` already checked against the digest.
    /// Returns the plaintext (a `PersonalData` encoding).
    ///
    /// # Errors
    /// Why it does not open (not this agency's key, no key configured,
    /// altered): the event is quarantined with that detail.
    fn open(&self, event: &Event, index: usize, ciphertext: &[u8]) -> Result<Vec<u8>, String>;

    /// Keeps the opened personal data of a received, accepted `event`
    /// (called before the event is journaled, again on a redelivery that was
    /// not journaled yet; must be idempotent).
    ///
    /// # Errors
    /// A transient failure: the message is not acknowledged and comes again.
    fn keep(&self, event: &Event, opened: &Opened) -> Result<(), String>;
}

/// Plaintexts opened from an event's sealed sections, in section order.
/// Its `Debug` shows only sizes: it holds personal data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Opened(pub Vec<Vec<u8>>);

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<usize> = self.0.iter().map(Vec::len).collect();
        write!(f, "Opened({sizes:?} bytes, redacted)")
    }
}

/// Adds the detached ciphertexts as headers (the relay's step; public for
/// tests and the fuzz seeds).
pub fn attach(headers: &mut async_nats::HeaderMap, ciphertexts: &[Vec<u8>]) {
    for (i, c) in ciphertexts.iter().enumerate() {
        headers.insert(header_name(i).as_str(), STANDARD.encode(c).as_str());
    }
}

/// Opens section `index` of `event` with the recipient's `key`: the section
/// must name that key and the Waymark suite, the HPKE associated data is the
/// event id, and the plaintext must be a `PersonalData` encoding. What an
/// agency's [`Sealing::open`] does with its own key.
///
/// # Errors
/// Why it does not open (no personal data in the message).
pub fn open_section(
    key: &EncryptionKey,
    event: &Event,
    index: usize,
    ciphertext: &[u8],
) -> Result<Vec<u8>, String> {
    let s = event
        .sealed
        .get(index)
        .ok_or_else(|| format!("no sealed section {index}"))?;
    if s.recipient_key_id != key.key_id() {
        return Err(format!(
            "sealed to key {:.80}, not to this agency's key {}",
            s.recipient_key_id,
            key.key_id()
        ));
    }
    if s.suite != SUITE {
        return Err(format!("suite {:.120} is not {SUITE}", s.suite));
    }
    let plain = key
        .open(&s.encapsulated_key, ciphertext, event.event_id.as_bytes())
        .map_err(|e| e.to_string())?;
    PersonalData::decode(plain.as_slice())
        .map_err(|_| "the opened data is not a PersonalData encoding".to_owned())?;
    Ok(plain)
}

/// Takes the detached ciphertexts of `event` from `headers`, checks them
/// against the signed digests and opens them with `sealing` (the inbox's
/// step; public for the fuzz target).
///
/// # Errors
/// The detail of a `sealed_data` quarantine.
pub fn open_all(
    sealing: Option<&dyn Sealing>,
    event: &Event,
    headers: Option<&async_nats::HeaderMap>,
) -> Result<Opened, String> {
    let mut opened = Vec::with_capacity(event.sealed.len());
    for (i, s) in event.sealed.iter().enumerate() {
        if !s.ciphertext.is_empty() {
            return Err(format!(
                "sealed[{i}] carries its ciphertext inside the signed event; it must travel detached"
            ));
        }
        let name = header_name(i);
        let Some(value) = headers.and_then(|h| h.get(name.as_str())) else {
            return Err(format!("sealed[{i}]: header {name} is missing"));
        };
        let Ok(ciphertext) = STANDARD.decode(value.as_str()) else {
            return Err(format!("sealed[{i}]: header {name} is not base64"));
        };
        if Sha256::digest(&ciphertext).as_slice() != s.ciphertext_sha256.as_slice() {
            return Err(format!(
                "sealed[{i}]: the detached ciphertext does not match the signed ciphertext_sha256 \
                 (altered in transit or attached to the wrong event)"
            ));
        }
        let Some(sealing) = sealing else {
            return Err("this agency cannot open sealed data (not set up)".into());
        };
        opened.push(
            sealing
                .open(event, i, &ciphertext)
                .map_err(|e| format!("sealed[{i}]: {e}"))?,
        );
    }
    if let Some(h) = headers {
        let extra = (event.sealed.len()..event.sealed.len() + 64)
            .find(|i| h.get(header_name(*i).as_str()).is_some());
        if let Some(i) = extra {
            return Err(format!(
                "header {} has no sealed section in the signed event",
                header_name(i)
            ));
        }
    }
    Ok(Opened(opened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_proto::v1::SealedData;

    struct Echo;
    impl Sealing for Echo {
        fn ciphertexts(&self, _: &Event) -> Result<Vec<Vec<u8>>, String> {
            Ok(Vec::new())
        }
        fn open(&self, _: &Event, _: usize, c: &[u8]) -> Result<Vec<u8>, String> {
            Ok(c.iter().rev().copied().collect())
        }
        fn keep(&self, _: &Event, _: &Opened) -> Result<(), String> {
            Ok(())
        }
    }

    fn event(ciphertext: &[u8]) -> Event {
        Event {
            sealed: vec![SealedData {
                ciphertext_sha256: Sha256::digest(ciphertext).to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn detached_ciphertexts_are_checked_against_the_signed_digest() {
        let e = event(b"cipher");
        let mut h = async_nats::HeaderMap::new();
        attach(&mut h, &[b"cipher".to_vec()]);
        let o = open_all(Some(&Echo), &e, Some(&h)).unwrap();
        assert_eq!(o.0, vec![b"rehpic".to_vec()]);
        assert!(!format!("{o:?}").contains("rehpic"));

        let mut swapped = async_nats::HeaderMap::new();
        attach(&mut swapped, &[b"CIPHER".to_vec()]);
        let err = open_all(Some(&Echo), &e, Some(&swapped)).unwrap_err();
        assert!(err.contains("does not match"), "{err}");

        let err = open_all(Some(&Echo), &e, None).unwrap_err();
        assert!(err.contains("missing"), "{err}");

        let mut extra = async_nats::HeaderMap::new();
        attach(&mut extra, &[b"cipher".to_vec(), b"more".to_vec()]);
        let err = open_all(Some(&Echo), &e, Some(&extra)).unwrap_err();
        assert!(err.contains("Waymark-Sealed-1"), "{err}");

        let mut inline = event(b"cipher");
        inline.sealed[0].ciphertext = b"cipher".to_vec();
        let err = open_all(Some(&Echo), &inline, Some(&h)).unwrap_err();
        assert!(err.contains("detached"), "{err}");

        let err = open_all(None, &e, Some(&h)).unwrap_err();
        assert!(err.contains("cannot open"), "{err}");
    }
}
