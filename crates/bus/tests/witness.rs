//! Checkpoint witnessing on a real nats-server: an agency that signs two
//! different histories of the same size is caught by its witness.

mod common;

use std::time::Duration;

use common::*;
use prost::Message;
use waymark_bus::subjects;
use waymark_proto::v1 as pb;
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyKind, CaseId, Timestamp};

/// A journal of A's with `n` local events and a checkpoint over them.
fn forked_history(dir: &std::path::Path, k: &Keys, n: usize) -> pb::Envelope {
    let j = open_journal(dir, A, &k.a);
    for _ in 0..n {
        j.append_originated(&signed(&k.a, &opened(CaseId::new())), Timestamp::now())
            .unwrap();
    }
    j.checkpoint_now(Timestamp::now()).unwrap().unwrap()
}

async fn announce(js: &async_nats::jetstream::Context, checkpoint: &pb::Envelope) {
    let ann = pb::CheckpointAnnouncement {
        checkpoint: Some(checkpoint.clone()),
        consistency: None,
    };
    js.publish(subjects::checkpoint(&id(A)), ann.encode_to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_equivocation_is_detected_by_a_witness() {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let k = keys();
    let db = TestDir::new("b").unwrap();
    let jb = open_journal(db.path(), B_, &k.b);
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    waymark_bus::provision::provision(&js, &config(B_, AgencyKind::Shelter))
        .await
        .unwrap();

    // Two journals of A's, opened with the same key, each with 3 entries.
    let (d1, d2) = (TestDir::new("a1").unwrap(), TestDir::new("a2").unwrap());
    let first = forked_history(d1.path(), &k, 3);
    let second = forked_history(d2.path(), &k, 3);
    let (c1, c2) = (
        pb::Checkpoint::decode(first.payload.as_slice()).unwrap(),
        pb::Checkpoint::decode(second.payload.as_slice()).unwrap(),
    );
    assert_eq!((c1.size, c2.size), (3, 3));
    assert_ne!(c1.root_hash, c2.root_hash);

    announce(&js, &first).await;
    wait_for(
        Duration::from_secs(60),
        "B witnesses A's checkpoint",
        || async { !entries_of_kind(&jb, pb::EntryKind::CheckpointWitnessed).is_empty() },
    )
    .await
    .unwrap();
    assert_eq!(b.counters().equivocations(), 0);

    // The same size, another root, the same key: equivocation.
    announce(&js, &second).await;
    let counters = b.counters();
    wait_for(
        Duration::from_secs(60),
        "B detects the equivocation",
        || {
            let c = counters.clone();
            async move { c.equivocations() >= 1 }
        },
    )
    .await
    .unwrap();
    let eq = entries_of_kind(&jb, pb::EntryKind::Equivocation);
    assert_eq!(eq.len(), 1);
    let ev = eq[0].equivocation.as_ref().unwrap();
    assert_eq!(ev.agency_id, A);
    assert_eq!(ev.first.as_ref(), Some(&first));
    assert_eq!(ev.second.as_ref(), Some(&second));
    assert!(ev.detail.contains("two roots for size 3"), "{}", ev.detail);
    assert_eq!(counters.equivocations(), 1);
    // Only the first history was witnessed (and cosigned); nothing was
    // quarantined: both checkpoints carry A's valid signature.
    let witnessed = entries_of_kind(&jb, pb::EntryKind::CheckpointWitnessed);
    assert_eq!(witnessed.len(), 1);
    assert_eq!(witnessed[0].envelope, first.encode_to_vec());
    assert_eq!(counters.quarantined_total(), 0);
}
