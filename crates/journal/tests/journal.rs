//! Journal behaviour: outbox, dedup, case index, checkpoints, proofs,
//! cosignatures, export, verification and import.

mod common;

use common::*;
use prost::Message;
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_journal::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use waymark_journal::{
    Appended, SledConfig, SledStore, VerifyProblem, export, import, verify_export, verify_journal,
};
use waymark_proto::PAYLOAD_TYPE_COSIGNATURE;
use waymark_proto::v1::{Checkpoint, Cosignature, Quarantine};
use waymark_types::{CaseId, Timestamp};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

#[test]
fn outbox_dedup_receipts_and_case_index() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter_key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let case = CaseId::new();

    let (ev, env) = event(&key, "police-a", "shelter-b", Some(case));
    let a = j.append_originated(&env, t(10)).unwrap();
    assert!(matches!(a, Appended::New { seq: 1, .. }));
    // Retrying the same event is idempotent.
    assert_eq!(
        j.append_originated(&env, t(11)).unwrap(),
        Appended::Existing { seq: 1 }
    );
    let out = j.outbox(0, 10).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].seq, out[0].event_id, out[0].recipient.as_str()),
        (1, ev, "shelter-b")
    );

    j.append_quarantined(
        Quarantine {
            reason: "malformed".into(),
            ..Quarantine::default()
        },
        t(12),
    )
    .unwrap();

    // The shelter's receipt completes the delivery atomically.
    let (_, receipt) = event(&shelter_key, "shelter-b", "police-a", Some(case));
    let r = j.append_received(&receipt, t(13), Some(ev)).unwrap();
    assert_eq!(r.seq(), 3);
    assert!(j.outbox(0, 10).unwrap().is_empty());
    // Redelivery of the receipt is deduplicated.
    assert_eq!(
        j.append_received(&receipt, t(14), Some(ev)).unwrap(),
        Appended::Existing { seq: 3 }
    );
    // A receipt for an unknown event is refused.
    let (_, other) = event(&shelter_key, "shelter-b", "police-a", None);
    assert!(
        j.append_received(&other, t(15), Some(waymark_types::EventId::new()))
            .is_err()
    );
    // Malformed envelopes are refused before anything is written.
    assert!(j.append_originated(b"garbage", t(16)).is_err());
    assert_eq!(j.size().unwrap(), 3);

    let seqs: Vec<u64> = j
        .case_entries(&case, 0, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, vec![1, 3]);
    // The quarantined input is about no case: found without a scan, also
    // after a reopen.
    let uncased = |j: &waymark_journal::Journal<SledStore>| -> Vec<u64> {
        j.uncased_entries(0, 10)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(uncased(&j), vec![2]);
    assert!(j.uncased_entries(2, 10).unwrap().is_empty());
    assert_eq!(j.event_seq(&ev).unwrap(), Some(1));
}

#[test]
fn concurrent_appenders_share_commits_and_stay_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    let (_, env) = event(&key, "police-a", "", Some(CaseId::new()));
                    j.append_originated(&env, t(1)).unwrap();
                }
            });
        }
    });
    assert_eq!(j.size().unwrap(), 400);
    verify_journal(&j, &meta(&key), &ring(&[])).unwrap();
}

#[test]
fn checkpoints_proofs_and_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let witness = AgencyKey::generate();
    let j = open(dir.path(), &key);
    assert!(
        j.maybe_checkpoint(t(0)).unwrap().is_none(),
        "nothing to checkpoint"
    );
    for i in 0..4 {
        let (_, env) = event(&key, "police-a", "", None);
        j.append_originated(&env, t(i)).unwrap();
    }
    // Not due by count (5) nor by time (60 s).
    assert!(j.maybe_checkpoint(t(1000)).unwrap().is_none());
    // Due by time.
    let c4 = j
        .maybe_checkpoint(t(70_000))
        .unwrap()
        .expect("time-based checkpoint");
    for i in 0..13 {
        let (_, env) = event(&key, "police-a", "", None);
        j.append_originated(&env, t(70_000 + i)).unwrap();
    }
    let c17 = j
        .maybe_checkpoint(t(70_100))
        .unwrap()
        .expect("count-based checkpoint");
    assert!(j.maybe_checkpoint(t(70_200)).unwrap().is_none());
    let cp4 = Checkpoint::decode(c4.payload.as_slice()).unwrap();
    let cp17 = Checkpoint::decode(c17.payload.as_slice()).unwrap();
    assert_eq!((cp4.size, cp17.size), (4, 17));
    assert_eq!(cp17.root_hash, j.root(17).unwrap().to_vec());
    ring(&[&key])
        .verify(&c17, waymark_proto::PAYLOAD_TYPE_CHECKPOINT, t(70_100))
        .unwrap();

    for seq in 1..=17 {
        let p = j.inclusion_proof(seq, 17).unwrap();
        let leaf = leaf_hash(&j.entry(seq).unwrap().unwrap());
        verify_inclusion(&leaf, p.leaf_index, p.tree_size, &p.hashes, &cp17.root_hash).unwrap();
        let mut bad = p.hashes.clone();
        if let Some(h) = bad.first_mut() {
            h[0] ^= 1;
            assert!(
                verify_inclusion(&leaf, p.leaf_index, p.tree_size, &bad, &cp17.root_hash).is_err()
            );
        }
    }
    let cp = j.consistency_proof(4, 17).unwrap();
    verify_consistency(4, 17, &cp4.root_hash, &cp17.root_hash, &cp.hashes).unwrap();
    assert!(verify_consistency(4, 17, &cp17.root_hash, &cp4.root_hash, &cp.hashes).is_err());
    assert!(j.inclusion_proof(18, 17).is_err() && j.consistency_proof(5, 18).is_err());

    // A witness cosigns checkpoint 17.
    let cosig = Cosignature {
        witness_agency_id: "shelter-b".into(),
        checkpoint_hash: sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            &c17.payload,
        ))
        .to_vec(),
        agency_id: "police-a".into(),
        size: 17,
        root_hash: cp17.root_hash.clone(),
        witnessed_at: Some(proto_from_timestamp(t(70_500))),
    };
    let env = sign_envelope(&witness, PAYLOAD_TYPE_COSIGNATURE, cosig.encode_to_vec());
    assert!(
        j.add_cosignature(&env, &ring(&[])).is_err(),
        "unknown witness key"
    );
    j.add_cosignature(&env, &ring(&[&witness])).unwrap();
    let mut wrong = cosig.clone();
    wrong.root_hash = cp4.root_hash.clone();
    let bad = sign_envelope(&witness, PAYLOAD_TYPE_COSIGNATURE, wrong.encode_to_vec());
    assert!(
        j.add_cosignature(&bad, &ring(&[&witness])).is_err(),
        "wrong root"
    );
    assert_eq!(j.cosignatures(17).unwrap(), vec![env]);

    // Export, verify, import, verify the import; the root is preserved.
    let mut file = Vec::new();
    assert_eq!(export(&j, &mut file, &meta(&key)).unwrap(), 17);
    let s = verify_export(file.as_slice(), &ring(&[&witness])).unwrap();
    assert_eq!((s.entries, s.checkpoints, s.cosignatures), (17, 2, 1));
    // 17 events, 2 checkpoints, 1 cosignature and the trailer.
    assert_eq!(s.signatures_checked, 17 + 2 + 1 + 1);
    let s2 = verify_export(file.as_slice(), &ring(&[])).unwrap();
    assert_eq!(s2.signatures_unchecked, 1);
    let dir2 = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir2.path(), &SledConfig::default()).unwrap();
    let imported = import(file.as_slice(), &store, &ring(&[&witness])).unwrap();
    assert_eq!(imported.root, cp17.root_hash.as_slice());
    let replica = waymark_journal::Journal::open(
        store,
        waymark_journal::JournalConfig::new(agency("police-a")),
        None,
    )
    .unwrap();
    assert_eq!(replica.root(17).unwrap().to_vec(), cp17.root_hash);
    // Without the agency's key a replica verifies (its trailer unsigned)...
    let rs = verify_journal(&replica, &meta(&key), &ring(&[&witness])).unwrap();
    assert_eq!(rs.signatures_checked, 17 + 2 + 1);
    // ...but cannot sign an export.
    assert!(matches!(
        export(&replica, &mut Vec::new(), &meta(&key)),
        Err(waymark_journal::JournalError::NoExportKey)
    ));
    // With it, an imported journal exports byte for byte the same file
    // (Ed25519 signatures are deterministic).
    drop(replica);
    let store = SledStore::open(dir2.path(), &SledConfig::default()).unwrap();
    let replica = waymark_journal::Journal::open(
        store,
        waymark_journal::JournalConfig::new(agency("police-a")),
        Some(key.clone()),
    )
    .unwrap();
    let mut again = Vec::new();
    export(&replica, &mut again, &meta(&key)).unwrap();
    assert_eq!(
        again, file,
        "an imported journal exports byte for byte the same"
    );
}

#[test]
fn journal_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let case = CaseId::new();
    {
        let j = open(dir.path(), &key);
        for _ in 0..7 {
            let (_, env) = event(&key, "police-a", "shelter-b", Some(case));
            j.append_originated(&env, t(1)).unwrap();
        }
        j.checkpoint_now(t(2)).unwrap().unwrap();
    }
    let j = open(dir.path(), &key);
    assert_eq!(j.size().unwrap(), 7);
    assert_eq!(j.outbox(0, 100).unwrap().len(), 7);
    assert_eq!(j.case_entries(&case, 0, 100).unwrap().len(), 7);
    let (_, env) = event(&key, "police-a", "", None);
    assert_eq!(j.append_originated(&env, t(3)).unwrap().seq(), 8);
    verify_journal(&j, &meta(&key), &ring(&[])).unwrap();
    // A journal signed with a key the header does not list fails at the first event.
    let other = AgencyKey::generate();
    let f = verify_journal(&j, &meta(&other), &ring(&[])).unwrap_err();
    assert_eq!(f.record, 1);
    assert!(matches!(f.problem, VerifyProblem::EnvelopeSignature(_)));
}

#[test]
fn complete_outbox_removes_items_durably_without_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter = agency("shelter-b");
    let (ev, env) = event(&key, "police-a", "shelter-b", None);
    {
        let j = open(dir.path(), &key);
        let seq = j.append_originated(&env, t(1)).unwrap().seq();
        let (_, other) = event(&key, "police-a", "shelter-b", None);
        j.append_originated(&other, t(2)).unwrap();
        assert_eq!(j.outbox(0, 10).unwrap().len(), 2);
        // Wrong recipient or unknown seq: nothing to remove.
        assert!(!j.complete_outbox(seq, &agency("ngo-c")).unwrap());
        assert!(!j.complete_outbox(99, &shelter).unwrap());
        assert!(j.complete_outbox(seq, &shelter).unwrap());
        // Idempotent.
        assert!(!j.complete_outbox(seq, &shelter).unwrap());
        let left: Vec<u64> = j.outbox(0, 10).unwrap().iter().map(|o| o.seq).collect();
        assert_eq!(left, vec![2]);
        // No entry was journaled for the removal.
        assert_eq!(j.size().unwrap(), 2);
    }
    // Durable: still gone after reopening.
    let j = open(dir.path(), &key);
    let left: Vec<u64> = j.outbox(0, 10).unwrap().iter().map(|o| o.seq).collect();
    assert_eq!(left, vec![2]);
    // A late receipt for the completed event is still journaled.
    let shelter_key = AgencyKey::generate();
    let (_, receipt) = event(&shelter_key, "shelter-b", "police-a", None);
    assert!(matches!(
        j.append_received(&receipt, t(3), Some(ev)).unwrap(),
        Appended::New { seq: 3, .. }
    ));
    assert_eq!(j.outbox(0, 10).unwrap().len(), 1);
    verify_journal(&j, &meta(&key), &ring(&[&shelter_key])).unwrap();
}

#[test]
fn complete_outbox_races_with_appends_and_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter_key = AgencyKey::generate();
    let shelter = agency("shelter-b");
    let j = open(dir.path(), &key);
    let removed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    let (ev, env) = event(&key, "police-a", "shelter-b", None);
                    let seq = j.append_originated(&env, t(1)).unwrap().seq();
                    // A receipt and a direct completion of the same item,
                    // concurrently: exactly one of them removes it.
                    let (_, receipt) = event(&shelter_key, "shelter-b", "police-a", None);
                    std::thread::scope(|inner| {
                        inner.spawn(|| j.append_received(&receipt, t(2), Some(ev)).unwrap());
                        if j.complete_outbox(seq, &shelter).unwrap() {
                            removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                    assert!(!j.complete_outbox(seq, &shelter).unwrap());
                }
            });
        }
    });
    assert!(j.outbox(0, 1000).unwrap().is_empty());
    assert_eq!(j.size().unwrap(), 400);
    assert!(removed.into_inner() <= 200);
    verify_journal(&j, &meta(&key), &ring(&[&shelter_key])).unwrap();
}

#[test]
fn staged_received_events_and_receipts_commit_together_at_the_last_wait() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter_key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let case = CaseId::new();
    let mut staged = Vec::new();
    for i in 0..3 {
        let (_, received) = event(&shelter_key, "shelter-b", "police-a", Some(case));
        staged.push(j.stage_received(&received, t(i), None).unwrap());
        let (_, receipt) = event(&key, "police-a", "shelter-b", Some(case));
        staged.push(j.stage_originated(&receipt, t(i)).unwrap());
    }
    // Ordered, nothing visible, and the receipts not in the outbox yet.
    assert_eq!(j.size().unwrap(), 0);
    assert!(j.outbox(0, 10).unwrap().is_empty());
    let seqs: Vec<u64> = staged.iter().map(|s| s.appended().seq()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    // One wait, for the last: all six durable and visible, the receipts
    // queued for the relay.
    let last = *staged.last().unwrap();
    assert_eq!(j.wait_staged(last).unwrap().seq(), 6);
    assert_eq!(j.size().unwrap(), 6);
    assert_eq!(j.outbox(0, 10).unwrap().len(), 3);
    // The earlier ones return at once.
    assert_eq!(j.wait_staged(staged[0]).unwrap().seq(), 1);
    drop(j);
    let j = open(dir.path(), &key);
    assert_eq!(j.size().unwrap(), 6);
    verify_journal(&j, &meta(&key), &ring(&[&shelter_key])).unwrap();
}

#[test]
fn a_staged_entry_is_durable_with_the_next_append_and_in_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter_key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let case = CaseId::new();
    let (_, received) = event(&shelter_key, "shelter-b", "police-a", Some(case));
    let staged = j.stage_received(&received, t(1), None).unwrap();
    assert!(matches!(staged.appended(), Appended::New { seq: 1, .. }));
    // Ordered but not committed: not visible yet.
    assert_eq!(j.size().unwrap(), 0);
    // A second delivery while it is pending is the same entry.
    let again = j.stage_received(&received, t(2), None).unwrap();
    assert_eq!(again.appended(), Appended::Existing { seq: 1 });
    // The receipt naming seq 1, appended after it: when it returns, both are
    // durable and visible.
    let (_, receipt) = event(&key, "police-a", "shelter-b", Some(case));
    assert_eq!(j.append_originated(&receipt, t(3)).unwrap().seq(), 2);
    assert_eq!(j.size().unwrap(), 2);
    assert!(matches!(
        j.wait_staged(staged).unwrap(),
        Appended::New { seq: 1, .. }
    ));
    assert_eq!(j.wait_staged(again).unwrap(), Appended::Existing { seq: 1 });
    drop(j);
    let j = open(dir.path(), &key);
    assert_eq!(j.size().unwrap(), 2);
    verify_journal(&j, &meta(&key), &ring(&[&shelter_key])).unwrap();
}

/// A grow listener hears every commit that made entries visible, with a
/// size it can already read, and nothing for a commit without entries.
#[test]
fn grow_listeners_hear_each_commit_with_a_readable_size() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let shelter_key = AgencyKey::generate();
    let j = Arc::new(open(dir.path(), &key));
    let heard = Arc::new(Mutex::new(Vec::new()));
    j.on_grow({
        let (heard, j) = (heard.clone(), Arc::downgrade(&j));
        move |size| {
            // Readable at once: the listener runs after the batch is visible.
            let j = j.upgrade().unwrap();
            assert!(
                j.entry(size).unwrap().is_some(),
                "entry {size} not readable"
            );
            heard.lock().unwrap().push(size);
        }
    });
    let case = CaseId::new();
    let (_, sent) = event(&key, "police-a", "shelter-b", Some(case));
    j.append_originated(&sent, t(1)).unwrap();
    let (_, received) = event(&shelter_key, "shelter-b", "police-a", Some(case));
    j.append_received(&received, t(2), None).unwrap();
    assert_eq!(*heard.lock().unwrap(), vec![1, 2]);
    // An outbox removal commits no entry: nothing to hear.
    assert!(j.complete_outbox(1, &"shelter-b".parse().unwrap()).unwrap());
    // A duplicate appends nothing either.
    j.append_received(&received, t(3), None).unwrap();
    assert_eq!(*heard.lock().unwrap(), vec![1, 2]);
}

/// Many appenders on few cores, staged and plain, waiting on per-batch
/// wake-ups: every append returns, the journal is gapless and verifies.
#[test]
fn many_appenders_staged_and_plain_all_return() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let other = AgencyKey::generate();
    let j = open(dir.path(), &key);
    std::thread::scope(|s| {
        for n in 0..32 {
            let (j, key, other) = (&j, &key, &other);
            s.spawn(move || {
                for i in 0..40 {
                    if (n + i) % 3 == 0 {
                        let (_, env) = event(other, "shelter-b", "police-a", Some(CaseId::new()));
                        let st = j.stage_received(&env, t(1), None).unwrap();
                        if i % 2 == 0 {
                            j.wait_staged(st).unwrap();
                        } else {
                            let (_, env) = event(key, "police-a", "", Some(CaseId::new()));
                            j.append_originated(&env, t(1)).unwrap();
                            j.wait_staged(st).unwrap();
                        }
                    } else {
                        let (_, env) = event(key, "police-a", "", Some(CaseId::new()));
                        j.append_originated(&env, t(1)).unwrap();
                    }
                }
            });
        }
    });
    let staged_with_receipt = (0..32u64)
        .flat_map(|n| (0..40u64).map(move |i| (n, i)))
        .filter(|(n, i)| (n + i) % 3 == 0 && i % 2 == 1)
        .count() as u64;
    assert_eq!(j.size().unwrap(), 32 * 40 + staged_with_receipt);
    verify_journal(&j, &meta(&key), &ring(&[&other])).unwrap();
}

#[test]
fn a_request_record_commits_with_its_entry_and_answers_retries() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let case = CaseId::new();
    let (ev, env) = event(&key, "police-a", "shelter-b", Some(case));
    let a = j
        .append_originated_for_request(&env, t(1), b"RequestReferral\0k1", b"hash-a")
        .unwrap();
    assert!(matches!(a, Appended::New { seq: 1, .. }));
    let r = j.request_record(b"RequestReferral\0k1").unwrap().unwrap();
    assert_eq!((r.seq, r.value.as_slice()), (1, &b"hash-a"[..]));
    // A retry with a new event id (its first answer was lost) appends
    // nothing: the existing entry is the answer.
    let (_, env2) = event(&key, "police-a", "shelter-b", Some(case));
    assert_eq!(
        j.append_originated_for_request(&env2, t(2), b"RequestReferral\0k1", b"hash-a")
            .unwrap(),
        Appended::Existing { seq: 1 }
    );
    assert_eq!(j.size().unwrap(), 1);
    assert!(j.request_record(b"RequestReferral\0k2").unwrap().is_none());
    assert!(matches!(
        j.append_originated_for_request(&env2, t(2), b"", b"x"),
        Err(waymark_journal::JournalError::BadRequestKey)
    ));
    drop(j);
    // After a reopen the record is there, with the entry it answers.
    let j = open(dir.path(), &key);
    let r = j.request_record(b"RequestReferral\0k1").unwrap().unwrap();
    assert_eq!(r.seq, 1);
    assert_eq!(j.event_seq(&ev).unwrap(), Some(1));
    drop(j);
    // And when the index is rebuilt from the log: the log carries it.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let j = open(dir.path(), &key);
    let r = j.request_record(b"RequestReferral\0k1").unwrap().unwrap();
    assert_eq!((r.seq, r.value.as_slice()), (1, &b"hash-a"[..]));
}

/// Concurrent calls with one request key: exactly one entry, every call
/// answered with its seq.
#[test]
fn concurrent_requests_with_one_key_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = AgencyKey::generate();
    let j = open(dir.path(), &key);
    let seqs: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (j, key) = (&j, &key);
                s.spawn(move || {
                    let (_, env) = event(key, "police-a", "", Some(CaseId::new()));
                    j.append_originated_for_request(&env, t(1), b"OpenCase\0same", b"h")
                        .unwrap()
                        .seq()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(j.size().unwrap(), 1);
    assert!(seqs.iter().all(|s| *s == 1), "{seqs:?}");
}
