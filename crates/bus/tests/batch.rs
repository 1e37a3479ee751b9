//! Transport batches (`waymark_bus::batch`) on a real nats-server: events
//! for one recipient share broker messages and still arrive exactly once and
//! in order; a batch's items are checked one by one (the good journaled, the
//! bad quarantined alone); a message on a batch subject that is no batch is
//! quarantined whole.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use prost::Message;
use sha2::{Digest, Sha256};
use waymark_bus::Reason;
use waymark_bus::provision::EVENT_STREAM;
use waymark_bus::subjects::{self, SubjectKind};
use waymark_crypto::sign_envelope;
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1 as pb;
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyKind, CaseId, EventId};

/// Messages stored per subject from A to B.
async fn stored_a_to_b(js: &async_nats::jetstream::Context) -> HashMap<String, usize> {
    let stream = js.get_stream(EVENT_STREAM).await.unwrap();
    let filter = format!("waymark.v1.evt.{A}.{B_}.*");
    let mut s = stream.info_with_subjects(filter).await.unwrap();
    let mut out = HashMap::new();
    while let Some(x) = s.next().await {
        let (subject, n) = x.unwrap();
        out.insert(subject, n);
    }
    out
}

/// A sends `per_case` signals on each of `cases` cases to B (with
/// `batch_max_events` at A); returns the messages the broker stored from A
/// to B per subject, after checking every event arrived once, in order.
async fn run(batch_max_events: usize, cases: usize, per_case: usize) -> HashMap<String, usize> {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    let jb = open_journal(db.path(), B_, &k.b);
    let mut cfg = config(A, AgencyKind::Police);
    cfg.batch_max_events = batch_max_events;
    let a = Arc::new(start_with(
        &js,
        cfg,
        open_journal(da.path(), A, &k.a),
        &k,
        &k.a,
    ));
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let cases: Vec<CaseId> = (0..cases).map(|_| CaseId::new()).collect();
    let sent = burst(&a, &cases, per_case).await;
    wait_for(Duration::from_secs(180), "every receipt at A", || async {
        outbox_len(a.journal()) == 0
    })
    .await
    .unwrap();
    for (c, ids) in cases.iter().zip(&sent) {
        assert_eq!(&received_ids(&jb, c), ids, "case {c}: B's order differs");
    }
    assert_eq!(b.counters().quarantined_total(), 0);
    assert_eq!(a.counters().quarantined_total(), 0);
    stored_a_to_b(&js).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_one_recipient_share_broker_messages() {
    let (cases, per_case) = (40, 10);
    let stored = run(64, cases, per_case).await;
    let batch = subjects::event(&id(A), &id(B_), SubjectKind::Batch);
    let total: usize = stored.values().sum();
    assert!(
        stored.get(&batch).copied().unwrap_or(0) > 0,
        "no batch was published: {stored:?}"
    );
    // 400 signals (one lane per case, so at most 40 in flight): far fewer
    // broker messages than events.
    assert!(
        total < cases * per_case / 2,
        "{total} broker messages for {} events: {stored:?}",
        cases * per_case
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_max_events_one_publishes_every_event_alone() {
    let (cases, per_case) = (20, 5);
    let stored = run(1, cases, per_case).await;
    let batch = subjects::event(&id(A), &id(B_), SubjectKind::Batch);
    assert_eq!(stored.get(&batch), None, "{stored:?}");
    let signals = subjects::event(
        &id(A),
        &id(B_),
        SubjectKind::Event(waymark_types::EventKind::SignalReceived),
    );
    assert_eq!(stored.get(&signals), Some(&(cases * per_case)));
}

/// An envelope and the headers it travels with in a batch.
type Batched<'a> = (Vec<u8>, &'a [(&'a str, &'a str)]);

fn batch_of(items: &[Batched<'_>]) -> Vec<u8> {
    pb::EventBatch {
        events: items
            .iter()
            .map(|(env, headers)| pb::BatchedEvent {
                envelope: env.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            })
            .collect(),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_batches_are_checked_item_by_item_or_quarantined_whole() {
    let server = NatsServer::start().unwrap();
    let (client, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    // A's bus provisions the stream (B receipts the good item to it, which
    // A refuses: it never sent it); the batches below are published raw.
    let _a = start(
        &js,
        A,
        AgencyKind::Police,
        open_journal(da.path(), A, &k.a),
        &k,
        &k.a,
    );
    let jb = open_journal(db.path(), B_, &k.b);
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let counters = b.counters();
    let subject = subjects::event(&id(A), &id(B_), SubjectKind::Batch);

    // 1. A batch of three: A's good signal, A's signal with a forged
    // signature, and C's signal under A's subject.
    let case = CaseId::new();
    let good = signal(case);
    let good_id = EventId::parse(&good.event_id).unwrap();
    let good_bytes = signed(&k.a, &good);
    let forged = signal(CaseId::new());
    let forged_id = EventId::parse(&forged.event_id).unwrap();
    let mut env = sign_envelope(&k.a, PAYLOAD_TYPE_EVENT, forged.encode_to_vec());
    env.signatures[0].sig[0] ^= 0x01;
    let forged_bytes = env.encode_to_vec();
    let mut from_c = signal(CaseId::new());
    from_c.sender_id = C.into();
    from_c.sender_kind = pb::AgencyKind::Ngo as i32;
    let c_id = EventId::parse(&from_c.event_id).unwrap();
    let c_bytes = signed(&k.c, &from_c);
    let mixed = batch_of(&[
        (good_bytes.clone(), &[]),
        (forged_bytes.clone(), &[]),
        (c_bytes.clone(), &[]),
    ]);

    // 2. On the batch subject, bytes that are no batch.
    let garbage = b"\xff\xff\xff\xff not a batch".to_vec();
    // 3. A batch smuggling a broker header: refused whole, its (otherwise
    // good) event never journaled.
    let smuggled_ev = signal(CaseId::new());
    let smuggled_id = EventId::parse(&smuggled_ev.event_id).unwrap();
    let smuggling = batch_of(&[(signed(&k.a, &smuggled_ev), &[("Nats-Msg-Id", "x")])]);
    // 4. An empty batch.
    let empty = pb::EventBatch::default().encode_to_vec();

    wait_for(Duration::from_secs(30), "the event stream", || async {
        js.get_stream(EVENT_STREAM).await.is_ok()
    })
    .await
    .unwrap();
    for bytes in [&mixed, &garbage, &smuggling, &empty] {
        js.publish(subject.clone(), bytes.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    wait_for(Duration::from_secs(60), "every item handled", || {
        let c = counters.clone();
        async move { c.quarantined_total() >= 5 }
    })
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the good item journaled",
        || async { received_ids(&jb, &case).len() == 1 },
    )
    .await
    .unwrap();

    // The good item: journaled once, in its case.
    assert_eq!(received_ids(&jb, &case), vec![good_id.to_string()]);
    // The bad items: each quarantined alone, with its own hash and reason,
    // under the batch's subject; never journaled as received.
    let quarantined = entries_of_kind(&jb, pb::EntryKind::Quarantined);
    let reason_of = |bytes: &[u8]| -> Vec<String> {
        let hash = Sha256::digest(bytes).to_vec();
        quarantined
            .iter()
            .filter_map(|e| e.quarantine.as_ref())
            .filter(|q| q.message_hash == hash)
            .map(|q| {
                assert_eq!(q.subject, subject);
                q.reason.clone()
            })
            .collect()
    };
    assert_eq!(
        reason_of(&forged_bytes),
        vec![Reason::BadSignature.as_str()]
    );
    assert_eq!(reason_of(&c_bytes), vec![Reason::SubjectMismatch.as_str()]);
    assert_eq!(reason_of(&garbage), vec![Reason::Malformed.as_str()]);
    assert_eq!(reason_of(&smuggling), vec![Reason::Malformed.as_str()]);
    assert_eq!(reason_of(&empty), vec![Reason::Malformed.as_str()]);
    assert_eq!(quarantined.len(), 5);
    for ev in [&forged_id, &c_id, &smuggled_id] {
        assert_eq!(jb.event_seq(ev).unwrap(), None, "{ev} was journaled");
    }
    assert_eq!(counters.quarantined_count(Reason::Malformed), 3);
    assert_eq!(counters.quarantined_count(Reason::BadSignature), 1);
    assert_eq!(counters.quarantined_count(Reason::SubjectMismatch), 1);
    assert_eq!(counters.quarantined_total(), 5);
}
