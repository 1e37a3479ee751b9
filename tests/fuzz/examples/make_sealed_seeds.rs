//! Writes the `sealed_open` seeds (run from tests/fuzz):
//! `cargo run --example make_sealed_seeds`. Needs no input: a referral
//! carrying one and two sections genuinely sealed to
//! `waymark_fuzz::my_encryption_key`, with their detached ciphertexts as
//! header values (and one tampered copy), so the fuzzer starts past the
//! digest and the HPKE open.

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::seal::{SUITE, seal};
use waymark_proto::v1::{DataCategory, Event, PersonalData, ReferralRequested, SealedData, event};

fn main() {
    let key = waymark_fuzz::my_encryption_key();
    let id = "019ab3c4-0000-7000-8000-000000000001";
    let mut event = Event {
        event_id: id.into(),
        case_id: "6f9619ff-8b86-4d01-b42d-00cf4fc964ff".into(),
        sender_id: "bg-police-sofia".into(),
        recipient_id: waymark_fuzz::ME.into(),
        shares: vec![DataCategory::Identity as i32],
        body: Some(event::Body::ReferralRequested(ReferralRequested::default())),
        ..Default::default()
    };
    let mut values = Vec::new();
    for (i, name) in ["Seed Person", "Second Section"].iter().enumerate() {
        let p = PersonalData {
            full_name: (*name).into(),
            languages: vec!["bg".into()],
            ..Default::default()
        };
        let s = seal(&key.public_key(), id.as_bytes(), &p.encode_to_vec()).expect("sealing");
        event.sealed.push(SealedData {
            recipient_key_id: key.key_id().into(),
            suite: SUITE.into(),
            encapsulated_key: s.encapsulated_key,
            ciphertext: Vec::new(),
            categories: vec![DataCategory::Identity as i32],
            ciphertext_sha256: Sha256::digest(&s.ciphertext).to_vec(),
        });
        values.push(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &s.ciphertext,
        ));
        let ev = event.encode_to_vec();
        let mut seed = u16::try_from(ev.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        seed.extend_from_slice(&ev);
        seed.extend_from_slice(values.join("\0").as_bytes());
        write(&format!("sections-{}", i + 1), &seed);
        if i == 0 {
            let mut bad = seed.clone();
            let last = bad.len() - 2;
            bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
            write("tampered", &bad);
        }
    }
}

fn write(name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new("seeds/sealed_open");
    std::fs::create_dir_all(dir).expect("seed dir");
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}
