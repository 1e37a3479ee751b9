//! Cluster resilience: a 3-node NATS cluster on loopback with R3 streams; one
//! node is killed with SIGKILL mid-burst; the agencies see zero loss and zero
//! duplicates, in per-case order.

use std::collections::HashSet;
use std::time::Duration;

use waymark_testkit::{NatsCluster, TestDir, connect_urls, wait_for};
use waymark_tests::{
    TestAgency, case_opened, directory, outbox_empty, received_event_ids, signal_to,
};
use waymark_types::{AgencyKind, CaseId};

const CASES: usize = 20;
const SIGNALS_PER_CASE: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_burst_loses_and_duplicates_nothing() {
    let mut cluster = NatsCluster::start(3).expect("start a 3-node cluster");
    let (_client, js) = connect_urls(cluster.urls()).await.expect("connect");
    let dir = TestDir::new("cluster").unwrap();
    let police = TestAgency::new("bg-police", AgencyKind::Police, &dir.path().join("police"));
    let shelter = TestAgency::new(
        "bg-shelter",
        AgencyKind::Shelter,
        &dir.path().join("shelter"),
    );
    let directory = directory(&[&police, &shelter]);
    let police_bus = police.start_bus(&js, &directory, 3);
    let shelter_bus = shelter.start_bus(&js, &directory, 3);

    let cases: Vec<CaseId> = (0..CASES).map(|_| CaseId::new()).collect();
    for case in &cases {
        police_bus
            .send(case_opened(&police, *case))
            .await
            .expect("open case");
    }
    // The buses provision their streams in the background: wait for it.
    let replicas = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    wait_for(
        Duration::from_secs(120),
        "the event stream is provisioned",
        || {
            let (js, replicas) = (js.clone(), replicas.clone());
            async move {
                match js.get_stream(waymark_bus::provision::EVENT_STREAM).await {
                    Ok(s) => {
                        replicas.store(
                            s.cached_info().config.num_replicas,
                            std::sync::atomic::Ordering::SeqCst,
                        );
                        true
                    }
                    Err(_) => false,
                }
            }
        },
    )
    .await
    .expect("event stream provisioned");
    assert_eq!(
        replicas.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the event stream must be replicated on all 3 nodes"
    );

    let mut sent: Vec<Vec<String>> = vec![Vec::new(); CASES];
    let total = CASES * SIGNALS_PER_CASE;
    let mut next = |n: usize| {
        let i = n % CASES;
        let e = signal_to(&police, &shelter, cases[i]);
        sent[i].push(e.event_id.clone());
        e
    };
    for n in 0..total / 2 {
        police_bus.send(next(n)).await.expect("send");
    }
    // Kill a node only once delivery is under way and events are still in flight.
    wait_for(
        Duration::from_secs(120),
        "the shelter has received some signals",
        || {
            let (j, cases) = (shelter.journal.clone(), cases.clone());
            async move {
                let received: usize = cases.iter().map(|c| received_event_ids(&j, c).len()).sum();
                received >= total / 8
            }
        },
    )
    .await
    .expect("delivery started");
    assert!(
        !outbox_empty(&police.journal),
        "the burst must still be in flight when the node dies"
    );
    // The stream keeps a quorum of 2 of 3; clients on node 0 reconnect elsewhere.
    cluster.node_mut(0).kill().expect("kill node 0");
    for n in total / 2..total {
        police_bus
            .send(next(n))
            .await
            .expect("send is journaled even while the cluster fails over");
    }

    wait_for(
        Duration::from_secs(300),
        "every signal receipted at the police",
        || {
            let j = police.journal.clone();
            async move { outbox_empty(&j) }
        },
    )
    .await
    .expect("all receipts in");

    let mut seen = HashSet::new();
    for (i, case) in cases.iter().enumerate() {
        let got = received_event_ids(&shelter.journal, case);
        assert_eq!(
            got, sent[i],
            "case {i}: shelter journal differs from the police's send order"
        );
        for id in got {
            assert!(seen.insert(id), "an event was journaled twice");
        }
    }
    assert_eq!(seen.len(), total);
    police_bus.shutdown().await;
    shelter_bus.shutdown().await;
}
