//! The receiving agency is killed with SIGKILL mid-burst and restarted on the
//! same journal: every event still arrives exactly once, in per-case order,
//! and the sender holds a receipt for each.
//!
//! The receiver runs in a child process (this test binary re-executed with
//! `--exact receiver_child --ignored`), so the kill is a real process kill:
//! no destructor, no graceful shutdown, messages in flight at any step.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use waymark_crypto::AgencyKey;
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_tests::{
    TestAgency, case_opened, directory, outbox_empty, received_event_ids, signal_to,
};
use waymark_types::{AgencyKind, CaseId};

const POLICE: &str = "bg-police";
const SHELTER: &str = "bg-shelter";
const CHILD_ENV: &str = "WAYMARK_E2E_RECEIVER_DIR";
const URL_ENV: &str = "WAYMARK_E2E_NATS_URL";

fn spawn_receiver(dir: &Path, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "receiver_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir)
        .env(URL_ENV, url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the receiver process")
}

fn outbox_len(police: &TestAgency) -> usize {
    police
        .journal
        .outbox(0, usize::MAX)
        .expect("read outbox")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_burst_catches_up_exactly_once() {
    let server = NatsServer::start().expect("start nats-server");
    let (_client, js) = connect(&server).await.expect("connect");
    let dir = TestDir::new("receiver-kill").unwrap();
    let police = TestAgency::new(POLICE, AgencyKind::Police, &dir.path().join("police"));
    let shelter_key = AgencyKey::generate();
    shelter_key.save(&dir.path().join("shelter.key")).unwrap();
    police.key.save(&dir.path().join("police.key")).unwrap();

    // The receiver lives in a child process; the directory needs its public key.
    let shelter_pub = TestAgency::with_key(
        SHELTER,
        AgencyKind::Shelter,
        &dir.path().join("shelter-public-only"),
        shelter_key.clone(),
    );
    let directory = directory(&[&police, &shelter_pub]);
    let police_bus = police.start_bus(&js, &directory, 1);
    let mut child = spawn_receiver(dir.path(), &server.url());

    let cases: Vec<CaseId> = (0..20).map(|_| CaseId::new()).collect();
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    for case in &cases {
        police_bus
            .send(case_opened(&police, *case))
            .await
            .expect("open");
    }
    let total = 1_000;
    for n in 0..total {
        let i = n % cases.len();
        let e = signal_to(&police, &shelter_pub, cases[i]);
        sent[i].push(e.event_id.clone());
        police_bus.send(e).await.expect("send");
    }
    // Kill the receiver once it has receipted some but not all.
    wait_for(
        Duration::from_secs(120),
        "the receiver has receipted some events",
        || {
            let n = outbox_len(&police);
            async move { n < total - 100 }
        },
    )
    .await
    .expect("delivery under way");
    assert!(
        !outbox_empty(&police.journal),
        "the burst must still be in flight"
    );
    child.kill().expect("SIGKILL the receiver");
    child.wait().expect("reap the receiver");

    // While it is down nothing is lost: the sender keeps its outbox.
    assert!(!outbox_empty(&police.journal));
    let mut child = spawn_receiver(dir.path(), &server.url());
    wait_for(Duration::from_secs(300), "every event receipted", || {
        let done = outbox_empty(&police.journal);
        async move { done }
    })
    .await
    .expect("all receipts in after the restart");
    child.kill().expect("stop the receiver");
    child.wait().expect("reap the receiver");
    police_bus.shutdown().await;

    // The receiver's journal, read after its process is gone.
    let shelter = TestAgency::with_key(
        SHELTER,
        AgencyKind::Shelter,
        &dir.path().join("shelter"),
        shelter_key,
    );
    let mut seen = HashSet::new();
    for (i, case) in cases.iter().enumerate() {
        let got = received_event_ids(&shelter.journal, case);
        assert_eq!(got, sent[i], "case {i}: order or content differs");
        for id in got {
            assert!(seen.insert(id), "an event was journaled twice");
        }
    }
    assert_eq!(seen.len(), total);
}

/// The receiver process: the shelter's journal and bus, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child half of a_receiver_killed_mid_burst_catches_up_exactly_once"]
async fn receiver_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let url = std::env::var(URL_ENV).expect("nats url");
    let key = AgencyKey::load(&dir.join("shelter.key")).unwrap();
    let police_key = AgencyKey::load(&dir.join("police.key")).unwrap();
    let shelter = TestAgency::with_key(SHELTER, AgencyKind::Shelter, &dir.join("shelter"), key);
    let police = TestAgency::with_key(
        POLICE,
        AgencyKind::Police,
        &dir.join("police-public-only"),
        police_key,
    );
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let _bus = shelter.start_bus(&js, &directory(&[&police, &shelter]), 1);
    std::future::pending::<()>().await;
}
