//! Hostile input published raw on a real nats-server: every message is
//! quarantined (or, for a replay, deduplicated), counted, and never applied.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use prost::Message;
use sha2::{Digest, Sha256};
use waymark_bus::Reason;
use waymark_bus::subjects::{self, SubjectKind};
use waymark_crypto::{AgencyKey, sign_envelope};
use waymark_proto::v1 as pb;
use waymark_proto::{PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_EVENT};
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyKind, CaseId, EventId};

/// One hostile message and what B must make of it.
struct Hostile {
    what: &'static str,
    subject: String,
    bytes: Vec<u8>,
    reason: Reason,
    /// The event it carries, if any: it must never be journaled as received.
    event: Option<(EventId, CaseId)>,
}

fn sig_kind() -> SubjectKind {
    SubjectKind::Event(waymark_types::EventKind::SignalReceived)
}

/// A signal from `sender` (of `kind`) to B on a fresh case.
fn signal_from(sender: &str, kind: pb::AgencyKind) -> (pb::Event, EventId, CaseId) {
    let case = CaseId::new();
    let mut e = signal(case);
    e.sender_id = sender.into();
    e.sender_kind = kind as i32;
    let id = EventId::parse(&e.event_id).unwrap();
    (e, id, case)
}

fn hostile_messages(k: &Keys, max_bytes: usize) -> Vec<Hostile> {
    let to_b = |from: &str| subjects::event(&id(from), &id(B_), sig_kind());
    let mut out = Vec::new();

    // A forged signature: A's event, signature bytes altered.
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    let mut env = sign_envelope(&k.a, PAYLOAD_TYPE_EVENT, e.encode_to_vec());
    env.signatures[0].sig[0] ^= 0x01;
    out.push(Hostile {
        what: "forged signature",
        subject: to_b(A),
        bytes: env.encode_to_vec(),
        reason: Reason::BadSignature,
        event: Some((eid, case)),
    });

    // A's signed event with its payload altered after signing.
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    let mut env = sign_envelope(&k.a, PAYLOAD_TYPE_EVENT, e.encode_to_vec());
    let mut altered = e.clone();
    altered.case_id = CaseId::new().to_string();
    env.payload = altered.encode_to_vec();
    out.push(Hostile {
        what: "payload altered after signing",
        subject: to_b(A),
        bytes: env.encode_to_vec(),
        reason: Reason::BadSignature,
        event: Some((eid, case)),
    });

    // C, a member, signs its own event but publishes it under A's subject.
    let (e, eid, case) = signal_from(C, pb::AgencyKind::Ngo);
    out.push(Hostile {
        what: "C's event on A's subject",
        subject: to_b(A),
        bytes: signed(&k.c, &e),
        reason: Reason::SubjectMismatch,
        event: Some((eid, case)),
    });

    // C claims to be A (sender_id) on A's subject, signing with its own key.
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    out.push(Hostile {
        what: "C impersonating A",
        subject: to_b(A),
        bytes: signed(&k.c, &e),
        reason: Reason::SubjectMismatch,
        event: Some((eid, case)),
    });

    // A's retired key, used after its validity ended (a revoked key).
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    out.push(Hostile {
        what: "revoked key",
        subject: to_b(A),
        bytes: signed(&k.a_retired, &e),
        reason: Reason::RevokedKey,
        event: Some((eid, case)),
    });

    // A's next key, used before its validity starts.
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    out.push(Hostile {
        what: "key not yet valid",
        subject: to_b(A),
        bytes: signed(&k.a_next, &e),
        reason: Reason::RevokedKey,
        event: Some((eid, case)),
    });

    // An agency the directory does not know, with a key nobody owns.
    let (e, eid, case) = signal_from("ngo-unknown", pb::AgencyKind::Ngo);
    out.push(Hostile {
        what: "unknown agency",
        subject: to_b("ngo-unknown"),
        bytes: signed(&AgencyKey::generate(), &e),
        reason: Reason::UnknownSender,
        event: Some((eid, case)),
    });

    // Bytes that are no Envelope at all.
    out.push(Hostile {
        what: "malformed bytes",
        subject: to_b(A),
        bytes: b"\xff\xff\xff\xff not protobuf \x00\x01".to_vec(),
        reason: Reason::Malformed,
        event: None,
    });

    // A signed envelope whose payload is not an Event.
    out.push(Hostile {
        what: "envelope of garbage",
        subject: to_b(A),
        bytes: sign_envelope(&k.a, PAYLOAD_TYPE_EVENT, vec![0xff; 40]).encode_to_vec(),
        reason: Reason::Malformed,
        event: None,
    });

    // Larger than B's limit (a valid, signed event padded out).
    let (mut e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    if let Some(pb::event::Body::SignalReceived(s)) = &mut e.body {
        s.indicators = vec!["x".repeat(max_bytes)];
    }
    out.push(Hostile {
        what: "oversized",
        subject: to_b(A),
        bytes: signed(&k.a, &e),
        reason: Reason::Oversized,
        event: Some((eid, case)),
    });

    // A signed checkpoint-typed envelope on an event subject.
    let (e, eid, case) = signal_from(A, pb::AgencyKind::Police);
    out.push(Hostile {
        what: "wrong payload type",
        subject: to_b(A),
        bytes: sign_envelope(&k.a, PAYLOAD_TYPE_CHECKPOINT, e.encode_to_vec()).encode_to_vec(),
        reason: Reason::WrongPayloadType,
        event: Some((eid, case)),
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_quarantined_counted_and_never_applied() {
    let server = NatsServer::start().unwrap();
    let (client, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    let a = Arc::new(start(
        &js,
        A,
        AgencyKind::Police,
        open_journal(da.path(), A, &k.a),
        &k,
        &k.a,
    ));
    let jb = open_journal(db.path(), B_, &k.b);
    let mut cfg = config(B_, AgencyKind::Shelter);
    cfg.max_message_bytes = 16 * 1024;
    let max = cfg.max_message_bytes;
    let b = start_with(&js, cfg, jb.clone(), &k, &k.b);

    // A legitimate event first: B accepts it and A gets its receipt.
    let case = CaseId::new();
    a.send(opened(case)).await.unwrap();
    let good = signal(case);
    let good_id = good.event_id.clone();
    let sent = a.send(good).await.unwrap();
    wait_for(
        Duration::from_secs(60),
        "the good event's receipt",
        || async { outbox_len(a.journal()) == 0 },
    )
    .await
    .unwrap();
    assert_eq!(received_ids(&jb, &case), vec![good_id.clone()]);
    let counters = b.counters();
    let dups_before = counters.duplicates();

    let hostile = hostile_messages(&k, max);
    for h in &hostile {
        // Raw, through the client: no bus code on the sending side.
        js.publish(h.subject.clone(), h.bytes.clone().into())
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", h.what));
    }
    // The replay: the good event's exact journaled bytes, long after the
    // broker's duplicate window could catch it (a new Nats-Msg-Id).
    let replay = pb::JournalEntry::decode(a.journal().entry(sent.seq).unwrap().unwrap().as_slice())
        .unwrap()
        .envelope;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "replayed-much-later");
    js.publish_with_headers(
        subjects::event(&id(A), &id(B_), sig_kind()),
        headers,
        replay.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    client.flush().await.unwrap();

    let n = hostile.len() as u64;
    wait_for(
        Duration::from_secs(60),
        "every hostile message handled",
        || {
            let c = counters.clone();
            async move { c.quarantined_total() >= n && c.duplicates() > dups_before }
        },
    )
    .await
    .unwrap();

    // Each one quarantined once, with its exact reason token.
    let quarantined = entries_of_kind(&jb, pb::EntryKind::Quarantined);
    assert_eq!(
        quarantined.len(),
        hostile.len(),
        "one QUARANTINED entry each"
    );
    for h in &hostile {
        let hash = Sha256::digest(&h.bytes).to_vec();
        let q: Vec<&pb::Quarantine> = quarantined
            .iter()
            .filter_map(|e| e.quarantine.as_ref())
            .filter(|q| q.message_hash == hash)
            .collect();
        assert_eq!(q.len(), 1, "{}: one QUARANTINED entry", h.what);
        assert_eq!(q[0].reason, h.reason.as_str(), "{}: reason", h.what);
        assert_eq!(q[0].subject, h.subject, "{}: subject", h.what);
        assert!(
            q[0].message.len() <= waymark_bus::quarantine::MAX_KEPT,
            "{}",
            h.what
        );
        // Never applied: no RECEIVED entry, nothing in the case.
        if let Some((ev, case)) = &h.event {
            assert_eq!(jb.event_seq(ev).unwrap(), None, "{}: journaled", h.what);
            assert!(
                jb.case_entries(case, 0, 10).unwrap().is_empty(),
                "{}: the case was touched",
                h.what
            );
        }
    }
    // The counters, by reason.
    let expect = |r: Reason| hostile.iter().filter(|h| h.reason == r).count() as u64;
    for r in [
        Reason::BadSignature,
        Reason::SubjectMismatch,
        Reason::UnknownSender,
        Reason::Malformed,
        Reason::Oversized,
        Reason::WrongPayloadType,
    ] {
        assert_eq!(counters.quarantined_count(r), expect(r), "{}", r.as_str());
    }
    assert_eq!(counters.quarantined_total(), n);

    // The replay was deduplicated: still one RECEIVED entry, counted.
    assert_eq!(received_ids(&jb, &case), vec![good_id]);
    assert_eq!(counters.duplicates(), dups_before + 1);
    let received = entries_of_kind(&jb, pb::EntryKind::Received);
    assert_eq!(received.len(), 1, "the good signal only");
    // Nothing refused at A, and A's outbox drains again (the receipt B
    // re-sent for the replay is itself deduplicated).
    assert_eq!(a.counters().quarantined_total(), 0);
    wait_for(Duration::from_secs(60), "A's outbox empty", || async {
        outbox_len(a.journal()) == 0
    })
    .await
    .unwrap();
}
