//! Floods against a real agency process on a real nats-server: the agency
//! keeps answering health checks throughout, refuses what it cannot take
//! with a precise status or a quarantine record, and loses nothing it
//! accepted.
//!
//! - gRPC: far more concurrent `OpenCase` calls than
//!   `grpc.max_concurrent_requests` (256) over many connections. Every call
//!   ends OK or RESOURCE_EXHAUSTED (nothing else), every OK'd case exists
//!   afterwards, and a prober's health checks (2 s deadline, every 50 ms)
//!   all answer SERVING.
//! - Bus: thousands of junk messages published straight onto the agency's
//!   inbox subjects. Each is quarantined and journaled (counted in the
//!   journal, exactly once each), the prober stays green, and the agency
//!   still records new work afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use waymark_federation::demo::api::{Agency, eventually, key};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions, SAMPLE};
use waymark_proto::v1 as pb;
use waymark_testkit::TestDir;
use waymark_types::AgencyKind;

async fn federation(dir: &std::path::Path) -> Federation {
    let mut opts = LaunchOptions::sample(
        dir,
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.members = [AgencyKind::Police, AgencyKind::Shelter]
        .iter()
        .map(|k| *SAMPLE.iter().find(|a| a.kind == *k).unwrap())
        .collect();
    Federation::start(opts).await.unwrap()
}

fn agency(fed: &Federation, kind: AgencyKind) -> Agency {
    Agency::new(fed.endpoints().values().find(|e| e.kind == kind).unwrap())
}

/// Checks health every 50 ms on its own connection until stopped; returns
/// (checks, failures) where a failure is anything but SERVING within 2 s.
fn prober(
    endpoint: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let ch = Channel::from_shared(endpoint)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut h = HealthClient::new(ch);
        let (mut n, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let mut req = tonic::Request::new(HealthCheckRequest::default());
            req.set_timeout(Duration::from_secs(2));
            match tokio::time::timeout(Duration::from_secs(3), h.check(req)).await {
                Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => {}
                Ok(Ok(r)) => failures.push(format!("status {}", r.get_ref().status)),
                Ok(Err(s)) => failures.push(format!("{:?}: {}", s.code(), s.message())),
                Err(_) => failures.push("no answer within 3 s".into()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (n, failures)
    })
}

fn open_request() -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        idempotency_key: key(),
        channel: pb::IdentificationChannel::Police as i32,
        forms: vec![pb::ExploitationForm::Labour as i32],
        ..pb::OpenCaseRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn floods_are_refused_or_quarantined_and_health_keeps_answering() {
    let dir = TestDir::new("flood").unwrap();
    let fed = federation(dir.path()).await;
    let police = agency(&fed, AgencyKind::Police);
    let police_url = fed
        .endpoints()
        .values()
        .find(|e| e.kind == AgencyKind::Police)
        .unwrap()
        .url();

    // ---- gRPC flood ----------------------------------------------------
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(police_url.clone(), stop.clone());
    const CONNECTIONS: usize = 16;
    const PER_CONNECTION: usize = 96;
    let exhausted = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for _ in 0..CONNECTIONS {
        // A connection of its own, so HTTP/2 stream limits do not throttle
        // the flood before the agency sees it.
        let ch = Channel::from_shared(police_url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        for _ in 0..PER_CONNECTION {
            let mut c = pb::case_service_client::CaseServiceClient::new(ch.clone());
            let exhausted = exhausted.clone();
            calls.push(tokio::spawn(async move {
                match c.open_case(open_request()).await {
                    Ok(r) => Ok(Some(r.into_inner().case_id)),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        exhausted.fetch_add(1, Ordering::Relaxed);
                        Ok(None)
                    }
                    Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
                }
            }));
        }
    }
    let mut opened = Vec::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(Some(case)) => opened.push(case),
            Ok(None) => {}
            Err(e) => panic!("a flooded call ended with neither OK nor RESOURCE_EXHAUSTED: {e}"),
        }
    }
    let total = CONNECTIONS * PER_CONNECTION;
    let shed = exhausted.load(Ordering::Relaxed);
    assert_eq!(opened.len() + shed, total);
    assert!(!opened.is_empty(), "some calls must get through");
    eprintln!(
        "gRPC flood: {total} calls, {} opened, {shed} shed",
        opened.len()
    );
    // Nothing accepted is lost: every opened case is there.
    let mut case = police.case();
    for id in &opened {
        case.get_case(pb::GetCaseRequest {
            case_id: id.clone(),
        })
        .await
        .unwrap_or_else(|s| panic!("opened case {id} is missing: {s:?}"));
    }

    // ---- bus flood -----------------------------------------------------
    // Junk on the police agency's inbox subject from the shelter (a member
    // turned hostile), published raw: unsigned envelopes, so each must be
    // quarantined as a bad signature.
    const JUNK: usize = 2000;
    // Connected as the shelter (the broker lets an agency publish under its
    // own sender token only): a hostile member, not an outsider.
    let shelter = "bg-shelter-sofia";
    let seed = waymark_federation::natsauth::load_seed(&fed.layout().nats_seed(shelter))
        .unwrap()
        .seed()
        .unwrap();
    let nats = async_nats::ConnectOptions::new()
        .nkey(seed)
        .custom_inbox_prefix(waymark_bus::subjects::inbox_prefix(
            &waymark_types::AgencyId::new(shelter).unwrap(),
        ))
        .connect(fed.nats_url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    let quarantined_before = quarantined(&police).await;
    for i in 0..JUNK {
        let subject = format!(
            "waymark.v1.evt.bg-shelter-sofia.{}.signal_received",
            police.id
        );
        let junk = pb::Envelope {
            payload_type: "application/vnd.waymark.event.v1+proto".into(),
            payload: format!("junk {i}").into_bytes(),
            signatures: vec![],
        };
        js.publish(subject, junk.encode_to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(120),
        "every junk message quarantined",
        || async { Ok(quarantined(&police).await >= quarantined_before + JUNK) },
    )
    .await
    .unwrap();
    assert_eq!(quarantined(&police).await, quarantined_before + JUNK);

    // The agency still records new work.
    let id = police
        .case()
        .open_case(open_request())
        .await
        .unwrap()
        .into_inner()
        .case_id;
    stop.store(true, Ordering::Relaxed);
    let (checks, failures) = probe.await.unwrap();
    assert!(checks > 10, "the prober ran ({checks} checks)");
    assert!(
        failures.is_empty(),
        "health checks failed during the floods: {failures:?}"
    );
    eprintln!("health: {checks} checks, all SERVING; case after floods {id}");
    fed.stop().await.unwrap();
}

/// QUARANTINED entries in `a`'s journal.
async fn quarantined(a: &Agency) -> usize {
    let mut j = pb::journal_service_client::JournalServiceClient::new(a.channel());
    let mut s = j
        .get_entries(pb::GetEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(r) = s.message().await.unwrap() {
        let e = pb::JournalEntry::decode(r.entry.as_slice()).unwrap();
        if e.kind == pb::EntryKind::Quarantined as i32 {
            n += 1;
        }
    }
    n
}
