//! Issue 8's canary: the whole sample federation (six real agency processes
//! on a real nats-server with the generated per-agency credentials, debug
//! logs, Prometheus endpoints and OTLP traces to a real OTLP/gRPC receiver)
//! handles a person whose name is a unique canary.
//!
//! 1. Police records the person and refers them to the shelter with the
//!    name sealed to the shelter. The canary is then returned by the
//!    shelter's `GetPersonalData` (the intended recipient's API response)
//!    and appears in clear text nowhere else: no log, trace, metric, file of
//!    the NATS store, journal, agency store or key directory.
//! 2. Police erases. The shelter erases its copy and acknowledges. The
//!    canary then appears nowhere at all (no API returns it either), and
//!    every agency's journal export still verifies and audits clean against
//!    the signed manifest.
//!
//! A positive control shows the scan finds the canary where it is written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use waymark_audit::{AuditOptions, audit_dir};
use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions};
use waymark_federation::{AgencyProgram, Endpoint, Federation, LaunchOptions};
use waymark_testkit::{TestDir, wait_for};
use waymark_tests::otlp::OtlpSink;
use waymark_types::{AgencyKind, EventId};

const T: Duration = Duration::from_secs(90);

/// Files under `root` whose bytes contain `needle`.
fn files_with(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// `GET /metrics` of an agency.
async fn scrape(e: &Endpoint) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(e.metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.contains(" 200 "), "scrape failed: {body:.200}");
    body
}

/// Every agency's metrics hold no canary.
async fn metrics_clean(fed: &Federation, canary: &str) {
    for e in fed.endpoints().values() {
        let text = scrape(e).await;
        assert!(text.contains("waymark_"), "{} exported no metrics", e.id);
        assert!(!text.contains(canary), "canary in {}'s metrics", e.id);
    }
}

fn endpoint(fed: &Federation, id: &str) -> Endpoint {
    fed.endpoints().get(id).unwrap().clone()
}

async fn client(e: &Endpoint) -> Client {
    Client::connect(&e.url(), ConnectOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_is_seen_only_by_its_recipient_and_erased_everywhere() {
    let dir = TestDir::new("canary").unwrap();
    let sink = OtlpSink::start(&dir.path().join("traces.jsonl"))
        .await
        .unwrap();
    let mut opts = LaunchOptions::sample(
        dir.path(),
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.checkpoint_interval = Duration::from_millis(500);
    opts.otlp_endpoint = Some(sink.endpoint());
    // Everything the agencies log, at every level, is scanned.
    opts.log_filter = "debug".into();
    let fed = Federation::start(opts).await.unwrap();
    let by_kind = |k: AgencyKind| {
        fed.endpoints()
            .values()
            .find(|e| e.kind == k)
            .unwrap()
            .id
            .to_string()
    };
    let (police, shelter) = (
        endpoint(&fed, &by_kind(AgencyKind::Police)),
        endpoint(&fed, &by_kind(AgencyKind::Shelter)),
    );
    let canary = format!("Canary-{}", EventId::new());
    let person = pb::PersonalData {
        full_name: canary.clone(),
        date_of_birth: "1999".into(),
        ..Default::default()
    };

    let p = client(&police).await;
    let case_id = p
        .cases()
        .open(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Sexual as i32],
            personal: Some(person.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .case_id;
    let to_shelter = |purpose: pb::Purpose, basis: Option<pb::DisclosureBasis>| pb::SendTo {
        recipient_id: shelter.id.to_string(),
        recipient_kind: pb::AgencyKind::Shelter as i32,
        purpose: purpose as i32,
        basis,
        ..Default::default()
    };
    let consent = p
        .consents()
        .grant(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            consent: Some(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                    purposes: vec![pb::Purpose::Accommodation as i32],
                    categories: vec![
                        pb::DataCategory::CaseCore as i32,
                        pb::DataCategory::Identity as i32,
                    ],
                    ..Default::default()
                }),
                valid_until: Some(
                    (std::time::SystemTime::now() + Duration::from_secs(30 * 86_400)).into(),
                ),
                method: pb::ConsentMethod::Written as i32,
                obtained_by_role: "social worker".into(),
                language: "en".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .consent_id;
    p.cases()
        .forward_event(pb::ForwardEventRequest {
            case_id: case_id.clone(),
            event_id: consent.clone(),
            send_to: Some(to_shelter(pb::Purpose::Unspecified, None)),
            ..Default::default()
        })
        .await
        .unwrap();
    let basis = pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(consent)),
    };
    p.referrals()
        .request(pb::RequestReferralRequest {
            case_id: case_id.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(pb::SendTo {
                shares: vec![pb::DataCategory::Identity as i32],
                personal: Some(person.clone()),
                ..to_shelter(pb::Purpose::Accommodation, Some(basis))
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    // The intended recipient's API response: the only place it shows.
    let s = client(&shelter).await;
    let personal_at = |c: &Client| {
        let c = c.clone();
        let case_id = case_id.clone();
        async move {
            c.cases()
                .personal_data(pb::GetPersonalDataRequest { case_id })
                .await
        }
    };
    wait_for(T, "the shelter holds the sealed name", || async {
        personal_at(&s)
            .await
            .is_ok_and(|r| r.personal.is_some_and(|p| p.full_name == canary))
    })
    .await
    .unwrap();

    // Positive control, then the scan of every file: logs, traces, the
    // NATS store, journals, agency stores, keys.
    let control = dir.path().join("control");
    std::fs::write(&control, &canary).unwrap();
    assert_eq!(
        files_with(dir.path(), canary.as_bytes()),
        vec![control.clone()]
    );
    std::fs::remove_file(&control).unwrap();
    assert_eq!(
        files_with(dir.path(), canary.as_bytes()),
        Vec::<PathBuf>::new()
    );
    metrics_clean(&fed, &canary).await;

    // Erasure at police reaches the shelter.
    let erased = p
        .cases()
        .erase(pb::EraseCaseRequest {
            case_id: case_id.clone(),
            ground: pb::ErasureGround::PersonRequest as i32,
            detail: "erasure request 2026-11-24/1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(erased.notified_agency_ids, vec![shelter.id.to_string()]);
    wait_for(T, "the shelter acknowledges the erasure", || async {
        p.cases()
            .erasure_status(pb::GetErasureStatusRequest {
                case_id: case_id.clone(),
            })
            .await
            .is_ok_and(|s| {
                s.outstanding_agency_ids.is_empty() && !s.acknowledged_agency_ids.is_empty()
            })
    })
    .await
    .unwrap();
    for c in [&p, &s] {
        let e = personal_at(c).await.unwrap_err();
        assert!(e.to_string().contains("erased"), "{e}");
    }
    metrics_clean(&fed, &canary).await;

    // Every journal still verifies and audits clean against the manifest.
    let layout = fed.layout().clone();
    let exports = layout.exports();
    std::fs::create_dir_all(&exports).unwrap();
    for e in fed.endpoints().values() {
        use futures::StreamExt;
        let c = client(e).await;
        let mut stream = c
            .journal()
            .export(pb::ExportJournalRequest { from_seq: 0 })
            .await
            .unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend(chunk.unwrap().chunk);
        }
        std::fs::write(exports.join(format!("{}.wmj", e.id)), bytes).unwrap();
    }
    fed.stop().await.unwrap();
    let authority = waymark_crypto::AgencyKey::load(&layout.authority_key()).unwrap();
    let manifest =
        waymark_crypto::manifest::load_verified(&layout.manifest(), &authority.public_key())
            .unwrap();
    let report = audit_dir(
        &exports,
        &AuditOptions {
            manifest: Some(manifest),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    assert!(
        report.clean,
        "audit after erasure:\n{}",
        report.to_json().unwrap()
    );

    // Stopped: logs and traces are flushed. Nowhere at all now.
    assert!(!sink.spans().is_empty(), "no traces were exported");
    assert_eq!(
        files_with(dir.path(), canary.as_bytes()),
        Vec::<PathBuf>::new()
    );
}
