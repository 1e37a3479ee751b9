//! The tamper corpus: a clean, witnessed federation export (the real
//! `waymark demo`, plus witnessing) audits CLEAN; each class of tampering
//! yields its own finding, asserted by rule id and location.

mod audit_fixture;

use std::path::Path;
use std::process::Command;

use audit_fixture::{AGENCIES, Fixture, POLICE, entry_record, find_in, records};
use prost::Message;
use sha2::{Digest, Sha256};
use waymark_audit::{AuditOptions, Finding, Report, audit_dir};
use waymark_crypto::{proto_from_timestamp, sign_envelope};
use waymark_proto::PAYLOAD_TYPE_CHECKPOINT;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body;
use waymark_types::{EventId, Timestamp};

fn audit(dir: &Path) -> Report {
    audit_dir(dir, &AuditOptions::default()).unwrap()
}

fn event_id(e: &pb::JournalEntry) -> String {
    let env = pb::Envelope::decode(e.envelope.as_slice()).unwrap();
    pb::Event::decode(env.payload.as_slice()).unwrap().event_id
}

/// The finding with `rule`, or a panic listing what was found.
fn expect<'r>(r: &'r Report, rule: &str) -> &'r Finding {
    r.findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| {
            let got: Vec<String> = r
                .findings
                .iter()
                .map(|f| format!("{} {} {}", f.rule, f.location, f.message))
                .collect();
            panic!("no {rule} finding; got:\n{}", got.join("\n"))
        })
}

fn police_file(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{POLICE}.wmj"))
}

/// Rewrites the police export's bytes in a new variant.
fn bytes_variant(fx: &Fixture, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let v = fx.variant(name);
    let mut b = std::fs::read(police_file(&v)).unwrap();
    f(&mut b);
    std::fs::write(police_file(&v), b).unwrap();
    v
}

fn assert_at(f: &Finding, agency: &str, seq: u64, event: Option<&str>) {
    assert_eq!(f.location.agency, agency, "{f:?}");
    assert_eq!(f.location.seq, Some(seq), "{f:?}");
    if let Some(e) = event {
        assert_eq!(f.location.event_id.as_deref(), Some(e), "{f:?}");
    }
}

#[test]
fn tamper_corpus() {
    let fx = Fixture::new();

    // The untampered export is clean, through the real binary too.
    let clean = audit(&fx.clean);
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    assert!(
        clean
            .journals
            .iter()
            .all(|j| j.verified && j.cosignatures >= (AGENCIES.len() - 1) as u64),
        "every journal verified and cosigned by every other agency"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["audit", "--json"])
        .arg(&fx.clean)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], "waymark.audit.v1");
    assert_eq!(json["clean"], true);

    let original = std::fs::read(police_file(&fx.clean)).unwrap();

    // 1. A flipped byte in an event payload (inside the rule-set string).
    let (range, e) = entry_record(&original, 20);
    let v = bytes_variant(&fx, "payload", |b| {
        let at = find_in(b, range.clone(), b"coe-cets197@1");
        b[at] ^= 0x01;
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "journal.signature_invalid"),
        POLICE,
        20,
        Some(&event_id(&e)),
    );

    // 2. A flipped byte in a signature.
    let (range, e) = entry_record(&original, 21);
    let sig = pb::Envelope::decode(e.envelope.as_slice())
        .unwrap()
        .signatures[0]
        .sig
        .clone();
    let v = bytes_variant(&fx, "signature", |b| {
        let at = find_in(b, range.clone(), &sig);
        b[at + 10] ^= 0x80;
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "journal.signature_invalid"),
        POLICE,
        21,
        Some(&event_id(&e)),
    );

    // 3. A flipped byte in a hash (the chain link of entry 30).
    let (range, e) = entry_record(&original, 30);
    let v = bytes_variant(&fx, "hash", |b| {
        let at = find_in(b, range.clone(), &e.prev_hash);
        b[at + 5] ^= 0x01;
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "journal.chain_broken"),
        POLICE,
        30,
        Some(&event_id(&e)),
    );

    // 4. A deleted entry.
    let (range, _) = entry_record(&original, 40);
    let v = bytes_variant(&fx, "deleted", |b| {
        b.drain(range.clone());
    });
    let r = audit(&v);
    assert_at(expect(&r, "journal.entry_missing"), POLICE, 40, None);
    assert!(
        r.findings
            .iter()
            .all(|f| f.rule != "journal.entry_reordered")
    );

    // 5. Reordered entries (40 and 41 swapped).
    let (r40, _) = entry_record(&original, 40);
    let (r41, _) = entry_record(&original, 41);
    let v = bytes_variant(&fx, "reordered", |b| {
        let (a, c) = (b[r40.clone()].to_vec(), b[r41.clone()].to_vec());
        b.splice(r40.start..r41.end, c.into_iter().chain(a));
    });
    let r = audit(&v);
    assert_at(expect(&r, "journal.entry_reordered"), POLICE, 40, None);

    // 6. Truncation: the file cut before entry 50.
    let (range, _) = entry_record(&original, 50);
    let v = bytes_variant(&fx, "truncated", |b| b.truncate(range.start));
    let r = audit(&v);
    assert_eq!(expect(&r, "journal.truncated").location.agency, POLICE);

    // 7. The police rewrite their whole journal, re-signed end to end, to
    // erase a person's refusal of disclosure.
    let v = fx.variant("rewritten");
    let store = fx.dir.path().join("rewritten-store");
    let j = audit_fixture::open_journal(&store, POLICE, &fx.keys[POLICE]);
    let mut dropped = None;
    for (_, rec) in records(&original) {
        let Some(pb::export_record::Record::Entry(b)) = rec.record else {
            continue;
        };
        let e = pb::JournalEntry::decode(b.as_slice()).unwrap();
        let at = waymark_crypto::timestamp_from_proto(e.recorded_at.as_ref().unwrap());
        match pb::EntryKind::try_from(e.kind).unwrap() {
            pb::EntryKind::Originated => {
                let env = pb::Envelope::decode(e.envelope.as_slice()).unwrap();
                let ev = pb::Event::decode(env.payload.as_slice()).unwrap();
                if dropped.is_none() && matches!(ev.body, Some(Body::RefusalRecorded(_))) {
                    dropped = Some(e.seq);
                    continue;
                }
                j.append_originated(&e.envelope, at).unwrap();
            }
            pb::EntryKind::Received => {
                j.append_received(&e.envelope, at, None).unwrap();
            }
            pb::EntryKind::CheckpointWitnessed => {
                j.append_witnessed(&e.envelope, at).unwrap();
            }
            _ => {}
        }
    }
    assert!(dropped.is_some(), "the demo records a refusal");
    j.checkpoint_now(Timestamp::now()).unwrap();
    audit_fixture::write_export(&j, &fx.keys[POLICE], POLICE, &police_file(&v));
    let r = audit(&v);
    assert!(
        r.journals.iter().all(|j| j.verified),
        "the rewrite verifies on its own"
    );
    assert_eq!(expect(&r, "witness.rewritten").location.agency, POLICE);

    // 8. Two different checkpoints for one size: the police show a forked
    // checkpoint to one witness (Varna), which journals it.
    let size = clean.journals.iter().find(|j| j.agency == POLICE).unwrap();
    let first_size = {
        let (_, rec) = records(&original)
            .into_iter()
            .find(|(_, r)| matches!(r.record, Some(pb::export_record::Record::Checkpoint(_))))
            .unwrap();
        let Some(pb::export_record::Record::Checkpoint(env)) = rec.record else {
            unreachable!()
        };
        pb::Checkpoint::decode(env.payload.as_slice()).unwrap().size
    };
    assert!(first_size <= size.entries);
    let forked = pb::Checkpoint {
        agency_id: POLICE.into(),
        size: first_size,
        root_hash: Sha256::digest(b"another history").to_vec(),
        time: Some(proto_from_timestamp(Timestamp::now())),
    };
    let forked = sign_envelope(
        &fx.keys[POLICE],
        PAYLOAD_TYPE_CHECKPOINT,
        forked.encode_to_vec(),
    );
    let v = fx.variant("equivocation");
    fx.append_to(&v, "bg-shelter-varna", |j| {
        j.append_witnessed(&forked.encode_to_vec(), Timestamp::now())
            .unwrap();
    });
    let r = audit(&v);
    let f = expect(&r, "witness.equivocation");
    assert_at(f, POLICE, first_size, None);
    assert!(
        r.findings.iter().all(|f| f.rule != "witness.rewritten"),
        "{:#?}",
        r.findings
    );

    // A case of the demo, for the planted events below.
    let case = records(&original)
        .into_iter()
        .find_map(|(_, rec)| match rec.record {
            Some(pb::export_record::Record::Entry(b)) => {
                let e = pb::JournalEntry::decode(b.as_slice()).unwrap();
                (!e.case_id.is_empty()).then_some(e.case_id)
            }
            _ => None,
        })
        .unwrap();
    let now = Timestamp::now();

    // 9. A forged receipt: the police journal a receipt "from" a shelter for
    // an event that never existed.
    let receipt = fx.sign(
        "bg-shelter-sofia",
        pb::Event {
            case_id: case.clone(),
            recipient_id: POLICE.into(),
            recipient_kind: pb::AgencyKind::Police as i32,
            body: Some(Body::Receipt(pb::Receipt {
                event: Some(pb::EventRef {
                    event_id: EventId::new().to_string(),
                    envelope_hash: Sha256::digest(b"nothing").to_vec(),
                }),
                status: pb::ReceiptStatus::Journaled as i32,
                journal_seq: 7,
                reason: String::new(),
            })),
            ..Default::default()
        },
        now,
    );
    let receipt_id = event_of(&receipt);
    let v = fx.variant("forged-receipt");
    let mut seq = 0;
    fx.append_to(&v, POLICE, |j| {
        seq = j.append_received(&receipt, now, None).unwrap().seq()
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "link.forged_receipt"),
        POLICE,
        seq,
        Some(&receipt_id),
    );

    // 10. A disclosure without consent or legal basis.
    let bare = fx.sign(
        POLICE,
        pb::Event {
            case_id: case.clone(),
            recipient_id: "bg-shelter-sofia".into(),
            recipient_kind: pb::AgencyKind::Shelter as i32,
            body: Some(Body::ReasonableGroundsDecided(
                pb::ReasonableGroundsDecided {
                    positive: true,
                    decided_by_role: "officer".into(),
                },
            )),
            ..Default::default()
        },
        now,
    );
    let v = fx.variant("no-basis");
    fx.append_to(&v, POLICE, |j| {
        seq = j.append_originated(&bare, now).unwrap().seq()
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "policy.disclosure.no_basis"),
        POLICE,
        seq,
        Some(&event_of(&bare)),
    );
    assert!(r.exit_code() == 1);

    // 11. A backdated consent: valid 30 days before it was journaled.
    let grant = fx.sign(
        POLICE,
        pb::Event {
            case_id: case,
            body: Some(Body::ConsentGranted(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_ids: vec![],
                    recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                    purposes: vec![pb::Purpose::Protection as i32],
                    categories: vec![pb::DataCategory::CaseCore as i32],
                }),
                valid_from: Some(proto_from_timestamp(now.plus_days(-30))),
                valid_until: Some(proto_from_timestamp(now.plus_days(300))),
                method: pb::ConsentMethod::Written as i32,
                obtained_by_role: "liaison".into(),
                representative: 0,
                language: "bg".into(),
                obtained_by_agency_id: POLICE.into(),
            })),
            ..Default::default()
        },
        now,
    );
    let v = fx.variant("backdated");
    fx.append_to(&v, POLICE, |j| {
        seq = j.append_originated(&grant, now).unwrap().seq()
    });
    let r = audit(&v);
    assert_at(
        expect(&r, "consent.backdated"),
        POLICE,
        seq,
        Some(&event_of(&grant)),
    );

    // The binary's exit code on a tampered export.
    let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("audit")
        .arg(&v)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("consent.backdated"));
}

fn event_of(envelope: &[u8]) -> String {
    let env = pb::Envelope::decode(envelope).unwrap();
    pb::Event::decode(env.payload.as_slice()).unwrap().event_id
}
