//! End-to-end delivery between two agencies over a real nats-server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyKind, CaseId};

async fn delivered(
    a: &Arc<waymark_bus::Bus>,
    b_journal: &waymark_journal::Journal<waymark_journal::SledStore>,
    cases: &[CaseId],
    sent: &[Vec<String>],
    timeout: Duration,
) {
    let total: usize = sent.iter().map(Vec::len).sum();
    wait_for(timeout, "every receipt at A", || async {
        outbox_len(a.journal()) == 0
    })
    .await
    .unwrap();
    let mut n = 0;
    for (c, ids) in cases.iter().zip(sent) {
        let got = received_ids(b_journal, c);
        assert_eq!(&got, ids, "case {c}: B's order differs from A's");
        n += got.len();
    }
    assert_eq!(n, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_exactly_once_in_order() {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    let ja = open_journal(da.path(), A, &k.a);
    let jb = open_journal(db.path(), B_, &k.b);
    let a = Arc::new(start(&js, A, AgencyKind::Police, ja, &k, &k.a));
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let cases: Vec<CaseId> = (0..100).map(|_| CaseId::new()).collect();
    let t0 = Instant::now();
    let sent = burst(&a, &cases, 100).await;
    delivered(&a, &jb, &cases, &sent, Duration::from_secs(300)).await;
    eprintln!(
        "10,000 events delivered and receipted in {:?}",
        t0.elapsed()
    );
    assert_eq!(b.counters().quarantined_total(), 0);
    assert_eq!(a.counters().quarantined_total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_broker_sigkill_mid_burst() {
    init_log();
    let mut server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    let jb = open_journal(db.path(), B_, &k.b);
    let a = Arc::new(start(
        &js,
        A,
        AgencyKind::Police,
        open_journal(da.path(), A, &k.a),
        &k,
        &k.a,
    ));
    let _b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let cases: Vec<CaseId> = (0..40).map(|_| CaseId::new()).collect();
    let burst_task = {
        let (a, cases) = (a.clone(), cases.clone());
        tokio::spawn(async move { burst(&a, &cases, 50).await })
    };
    wait_for(Duration::from_secs(120), "some deliveries", || async {
        cases
            .iter()
            .map(|c| received_ids(&jb, c).len())
            .sum::<usize>()
            > 200
    })
    .await
    .unwrap();
    server.kill().unwrap();
    server.restart().unwrap();
    let sent = burst_task.await.unwrap();
    delivered(&a, &jb, &cases, &sent, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_receiver_restart_and_offline_period() {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
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
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let cases: Vec<CaseId> = (0..40).map(|_| CaseId::new()).collect();
    let burst_task = {
        let (a, cases) = (a.clone(), cases.clone());
        tokio::spawn(async move { burst(&a, &cases, 50).await })
    };
    wait_for(Duration::from_secs(120), "some deliveries", || async {
        cases
            .iter()
            .map(|c| received_ids(&jb, c).len())
            .sum::<usize>()
            > 200
    })
    .await
    .unwrap();
    // Kill B: drop its tasks and journal handle, then stay offline a while.
    b.shutdown().await;
    drop(jb);
    let sent = burst_task.await.unwrap();
    wait_for(
        Duration::from_secs(60),
        "A keeps an outbox while B is offline",
        || async { outbox_len(a.journal()) > 0 },
    )
    .await
    .unwrap();
    let jb = open_journal(db.path(), B_, &k.b);
    let _b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    delivered(&a, &jb, &cases, &sent, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_stream_deletion_mid_burst() {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
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
    let _b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let cases: Vec<CaseId> = (0..40).map(|_| CaseId::new()).collect();
    let burst_task = {
        let (a, cases) = (a.clone(), cases.clone());
        tokio::spawn(async move { burst(&a, &cases, 50).await })
    };
    wait_for(Duration::from_secs(120), "some deliveries", || async {
        cases
            .iter()
            .map(|c| received_ids(&jb, c).len())
            .sum::<usize>()
            > 200
    })
    .await
    .unwrap();
    js.delete_stream(waymark_bus::provision::EVENT_STREAM)
        .await
        .unwrap();
    let sent = burst_task.await.unwrap();
    delivered(&a, &jb, &cases, &sent, Duration::from_secs(300)).await;
}
