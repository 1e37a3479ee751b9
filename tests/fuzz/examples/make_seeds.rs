//! Writes the committed seed corpus into `seeds/` (run from tests/fuzz):
//!
//! ```text
//! cargo run --example make_seeds -- DEMO_EXPORT_DIR
//! ```
//!
//! DEMO_EXPORT_DIR holds journal exports of a `waymark demo` run
//! (`.waymark/demo/exports`). Their events are real protocol traffic of
//! every kind; they are re-signed with the fixed fuzz keys of
//! `waymark_fuzz::AGENCIES` so that seeds pass the signature checks.
//! Deterministic for the same input except for journal timestamps and
//! sled's temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use waymark_bus::subjects::{self, SubjectKind};
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_journal::{ExportMeta, Journal, JournalConfig, SledConfig, SledStore, export};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{
    Envelope, Event, ExportRecord, JournalEntry, PublicKey, Quarantine, export_record::Record,
};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

fn read_events(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).expect("reading an export");
    let mut buf = &bytes[waymark_journal::MAGIC.len()..];
    let mut out = Vec::new();
    while !buf.is_empty() {
        let rec = ExportRecord::decode_length_delimited(&mut buf).expect("export record");
        if let Some(Record::Entry(e)) = rec.record {
            let entry = JournalEntry::decode(e.as_slice()).expect("entry");
            if let Ok(env) = Envelope::decode(entry.envelope.as_slice())
                && env.payload_type == PAYLOAD_TYPE_EVENT
                && let Ok(ev) = Event::decode(env.payload.as_slice())
            {
                out.push(ev);
            }
        }
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed dir");
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}

fn public(k: &AgencyKey) -> PublicKey {
    PublicKey {
        key_id: k.key_id().to_string(),
        ed25519: k.public_key().to_bytes().to_vec(),
        valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
        valid_until: None,
    }
}

/// A small journal of the fixed police agency: its own events, events
/// received from the shelter, a quarantine record, checkpoints.
fn journal_seed(events: &[Event], out: &Path) {
    let police = waymark_fuzz::key(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path(), &SledConfig::default()).expect("sled");
    let mut cfg = JournalConfig::new(AgencyId::new("bg-police-sofia").expect("id"));
    cfg.checkpoint_every_entries = 3;
    let j = Journal::open(store, cfg, Some(police.clone())).expect("journal");
    let mut n = 0;
    for (i, ev) in events.iter().enumerate().take(10) {
        let at = Timestamp::from_millis(1_700_000_000_000 + i as i64);
        if ev.sender_id == "bg-police-sofia" {
            let env = sign_envelope(&police, PAYLOAD_TYPE_EVENT, ev.encode_to_vec());
            j.append_originated(&env.encode_to_vec(), at)
                .expect("append");
        } else if let Some(k) = waymark_fuzz::key_of(&ev.sender_id) {
            let env = sign_envelope(&k, PAYLOAD_TYPE_EVENT, ev.encode_to_vec());
            j.append_received(&env.encode_to_vec(), at, None)
                .expect("append");
        } else {
            continue;
        }
        n += 1;
        if n == 4 {
            j.append_quarantined(
                Quarantine {
                    reason: "malformed".into(),
                    ..Quarantine::default()
                },
                at,
            )
            .expect("quarantine");
        }
    }
    j.checkpoint_now(Timestamp::from_millis(1_700_000_001_000))
        .expect("checkpoint");
    let meta = ExportMeta {
        agency_kind: AgencyKind::Police,
        keys: vec![public(&police)],
        exported_at: Timestamp::from_millis(1_700_000_002_000),
    };
    let mut bytes = Vec::new();
    export(&j, &mut bytes, &meta).expect("export");
    waymark_journal::verify_export(std::io::Cursor::new(&bytes), &waymark_fuzz::ring())
        .expect("the seed export verifies");
    write(&out.join("journal_import"), "police.wmj", &bytes);
}

fn main() {
    let demo: PathBuf = std::env::args_os()
        .nth(1)
        .expect("usage: make_seeds DEMO_EXPORT_DIR")
        .into();
    let out = Path::new("seeds");
    let mut all = Vec::new();
    for f in std::fs::read_dir(&demo).expect("demo dir") {
        let p = f.expect("dir entry").path();
        if p.extension().is_some_and(|e| e == "wmj") {
            all.extend(read_events(&p));
        }
    }
    // Envelopes: one per (sender, body kind), re-signed, on their subject.
    let mut seen = BTreeMap::new();
    for ev in &all {
        let (Some(k), Some(kind)) = (
            waymark_fuzz::key_of(&ev.sender_id),
            SubjectKind::of_event(ev),
        ) else {
            continue;
        };
        let Ok(sender) = AgencyId::new(&ev.sender_id) else {
            continue;
        };
        let Ok(recipient) = AgencyId::new(&ev.recipient_id) else {
            continue;
        };
        let name = format!("{}-{}", ev.sender_id, kind.as_str());
        if seen.contains_key(&name) {
            continue;
        }
        let subject = subjects::event(&sender, &recipient, kind);
        let env = sign_envelope(&k, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec();
        let mut seed = vec![u8::try_from(subject.len()).expect("short subject")];
        seed.extend_from_slice(subject.as_bytes());
        seed.extend_from_slice(&env);
        seen.insert(name, seed);
    }
    for (name, seed) in &seen {
        write(&out.join("envelope_decode"), name, seed);
    }
    // Event sequences: each case's events in journal order, length-delimited.
    let mut cases: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for ev in &all {
        ev.encode_length_delimited(cases.entry(&ev.case_id).or_default())
            .expect("encode");
    }
    for (i, bytes) in cases.values().enumerate() {
        write(&out.join("event_fields"), &format!("case-{i:02}"), bytes);
    }
    journal_seed(&all, out);
    // Proofs: a few sizes.
    for (i, s) in [[7u8, 3, 2, 9, 1], [63, 40, 17, 200, 5], [0, 0, 0, 0, 0]]
        .iter()
        .enumerate()
    {
        write(&out.join("proof_verify"), &format!("sizes-{i}"), s);
    }
    eprintln!(
        "seeds: {} envelopes, {} cases, 1 journal, 3 proof inputs from {} events",
        seen.len(),
        cases.len(),
        all.len()
    );
}
