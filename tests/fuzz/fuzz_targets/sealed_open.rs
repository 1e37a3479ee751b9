//! Detached sealed personal data at the recipient: an event's sealed
//! sections with arbitrary `Waymark-Sealed-<i>` header values go through the
//! inbox's step (`waymark_bus::sealing::open_all`: inline ciphertext refused,
//! header present and base64, SHA-256 equal to the signed digest, HPKE open
//! with the recipient's key bound to the event id, `PersonalData` decode).
//! Must never panic; whatever opens matched its signed digest and decodes.

#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sha2::{Digest, Sha256};
use waymark_bus::sealing::{header_name, open_all};
use waymark_fuzz::{FuzzSealing, my_encryption_key, split_sealed};
use waymark_proto::v1::{Event, PersonalData};

static SEALING: LazyLock<FuzzSealing> = LazyLock::new(|| FuzzSealing(my_encryption_key()));

fuzz_target!(|data: &[u8]| {
    let Some((event, values)) = split_sealed(data) else {
        return;
    };
    let Ok(event) = Event::decode(event) else {
        return;
    };
    let mut headers = async_nats::HeaderMap::new();
    for (i, v) in values.iter().enumerate().take(8) {
        // What the NATS parser can deliver: one line of visible ASCII.
        if let Ok(s) = std::str::from_utf8(v)
            && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            headers.insert(header_name(i).as_str(), s);
        }
    }
    if let Ok(opened) = open_all(Some(&*SEALING), &event, Some(&headers)) {
        assert_eq!(opened.0.len(), event.sealed.len());
        for (i, s) in event.sealed.iter().enumerate() {
            assert!(s.ciphertext.is_empty());
            let v = headers
                .get(header_name(i).as_str())
                .expect("opened without its header");
            let c = STANDARD.decode(v.as_str()).expect("opened from non-base64");
            assert_eq!(
                Sha256::digest(&c).as_slice(),
                s.ciphertext_sha256.as_slice()
            );
            assert!(PersonalData::decode(opened.0[i].as_slice()).is_ok());
        }
    }
});
