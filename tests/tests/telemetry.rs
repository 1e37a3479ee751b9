//! Operating a federation: real agency processes (police and shelter) on a
//! real nats-server, each with its Prometheus endpoint and, for the trace
//! test, exporting spans over real OTLP/gRPC.
//!
//! - Metrics: after a referral, `/metrics` of both agencies holds the bus and
//!   journal series with sane values (one delivery timed, outbox drained,
//!   journal entries counted, checkpoint lag known), labelled with the agency
//!   id only, and no case id or personal data anywhere in the scrape.
//! - Traces: the police's `RequestReferral` span and the shelter's
//!   `waymark.bus.receive` span are in one trace, the shelter's span a
//!   descendant of a police span, across two processes; no span carries the
//!   test's personal-data marker.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions};
use waymark_federation::{AgencyProgram, Endpoint, Federation, LaunchOptions, SAMPLE};
use waymark_testkit::TestDir;
use waymark_tests::otlp::OtlpSink;
use waymark_types::AgencyKind;

/// Stands for a person's name: must never show up in telemetry.
const MARKER: &str = "Zlatka-Marker-Petrova";

async fn federation(dir: &Path, otlp: Option<String>) -> Federation {
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
    opts.checkpoint_interval = Duration::from_millis(500);
    opts.otlp_endpoint = otlp;
    Federation::start(opts).await.unwrap()
}

fn endpoint(fed: &Federation, kind: AgencyKind) -> Endpoint {
    fed.endpoints()
        .values()
        .find(|e| e.kind == kind)
        .unwrap()
        .clone()
}

/// Police opens a case (with the marker as the person's name, kept at the
/// police), records consent, tells the shelter about it and refers the case
/// there. Returns the case id.
async fn refer(police: &Endpoint, shelter: &Endpoint) -> String {
    let client = Client::connect(&police.url(), ConnectOptions::default())
        .await
        .unwrap();
    let case_id = client
        .cases()
        .open(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Labour as i32],
            personal: Some(pb::PersonalData {
                full_name: MARKER.into(),
                notes: MARKER.into(),
                ..Default::default()
            }),
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
    let consent = client
        .consents()
        .grant(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            consent: Some(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                    purposes: vec![pb::Purpose::Accommodation as i32],
                    categories: vec![pb::DataCategory::CaseCore as i32],
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
    client
        .cases()
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
    client
        .referrals()
        .request(pb::RequestReferralRequest {
            case_id: case_id.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(to_shelter(pb::Purpose::Accommodation, Some(basis))),
            ..Default::default()
        })
        .await
        .unwrap();
    case_id
}

/// `GET http://addr/metrics` over a plain TCP connection (HTTP/1.0).
async fn scrape(e: &Endpoint) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(e.metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1."),
        "not an HTTP answer: {body:.200}"
    );
    assert!(body.contains(" 200 "), "scrape failed: {body:.200}");
    body
}

/// The samples of `name` (exact metric name), labels as written.
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let bare = series.split('{').next()?;
            if bare != name {
                return None;
            }
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Scrapes `e` until `ok` holds for the text (or `timeout`, then panics
/// with the last scrape).
async fn scrape_until(
    e: &Endpoint,
    timeout: Duration,
    ok: impl Fn(&str) -> Option<bool>,
) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let t = scrape(e).await;
        if ok(&t) == Some(true) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} metrics did not settle within {timeout:?}; last scrape:\n{t}",
            e.id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn value(text: &str, name: &str) -> Option<f64> {
    samples(text, name).first().map(|s| s.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_referral() {
    let dir = TestDir::new("telemetry-metrics").unwrap();
    let fed = federation(dir.path(), None).await;
    let (police, shelter) = (
        endpoint(&fed, AgencyKind::Police),
        endpoint(&fed, AgencyKind::Shelter),
    );
    let case_id = refer(&police, &shelter).await;

    // The police's two sends (forwarded consent, referral) are receipted:
    // both timed, the outbox drained, nothing pending.
    let text = scrape_until(&police, Duration::from_secs(60), |t| {
        let delivered = value(t, "waymark_bus_delivery_seconds_count")?;
        let depth = value(t, "waymark_bus_outbox_depth")?;
        let pending = value(t, "waymark_bus_receipts_pending")?;
        let entries = value(t, "waymark_journal_entries")?;
        Some(delivered >= 2.0 && depth == 0.0 && pending == 0.0 && entries >= 5.0)
    })
    .await;

    let sum = value(&text, "waymark_bus_delivery_seconds_sum").unwrap();
    assert!(
        sum > 0.0 && sum < 60.0,
        "delivery latency sum {sum} s is not sane"
    );
    let buckets = samples(&text, "waymark_bus_delivery_seconds_bucket");
    assert!(
        buckets.iter().any(|(s, _)| s.contains("le=\"0.005\"")),
        "configured latency buckets missing: {buckets:?}"
    );
    assert!(value(&text, "waymark_journal_bytes").unwrap() > 0.0);
    let referrals: Vec<_> = samples(&text, "waymark_grpc_requests_total")
        .into_iter()
        .filter(|(s, _)| s.contains("method=\"/waymark.v1.ReferralService/RequestReferral\""))
        .collect();
    assert!(
        referrals
            .iter()
            .any(|(s, v)| s.contains("code=\"OK\"") && *v >= 1.0),
        "no OK RequestReferral counted: {referrals:?}"
    );
    assert!(value(&text, "waymark_grpc_request_duration_seconds_count").is_some());
    assert!(value(&text, "waymark_journal_checkpoint_lag_entries").is_some());
    assert!(value(&text, "waymark_journal_checkpoint_age_seconds").unwrap() >= -1.0);
    for (series, _) in samples(&text, "waymark_bus_outbox_depth") {
        assert!(
            series.contains(&format!("agency=\"{}\"", police.id)),
            "{series}"
        );
    }

    // The shelter journaled what it received and sent its receipts.
    let shelter_text = scrape_until(&shelter, Duration::from_secs(30), |t| {
        Some(
            value(t, "waymark_journal_entries")? >= 4.0
                && value(t, "waymark_bus_outbox_depth")? == 0.0,
        )
    })
    .await;

    for t in [&text, &shelter_text] {
        assert!(!t.contains(&case_id), "a case id leaked into metrics");
        assert!(!t.contains(MARKER), "personal data leaked into metrics");
    }
    fed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_police_to_shelter() {
    let dir = TestDir::new("telemetry-traces").unwrap();
    let sink = OtlpSink::start(&dir.path().join("traces.jsonl"))
        .await
        .unwrap();
    let fed = federation(dir.path(), Some(sink.endpoint())).await;
    let (police, shelter) = (
        endpoint(&fed, AgencyKind::Police),
        endpoint(&fed, AgencyKind::Shelter),
    );
    refer(&police, &shelter).await;
    // Both sends receipted: the shelter has journaled the referral.
    scrape_until(&police, Duration::from_secs(60), |t| {
        Some(
            value(t, "waymark_bus_delivery_seconds_count")? >= 2.0
                && value(t, "waymark_bus_outbox_depth")? == 0.0,
        )
    })
    .await;
    // Flushes the batch exporters (agencies export at shutdown).
    fed.stop().await.unwrap();

    let spans = sink.spans();
    let police_svc = "waymark-police";
    let shelter_svc = "waymark-shelter";
    let by_id: HashMap<(&str, &str), &waymark_tests::otlp::ReceivedSpan> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    let referral_rpc = spans
        .iter()
        .find(|s| {
            s.service == police_svc
                && s.name == "rpc"
                && s.attributes
                    .iter()
                    .any(|a| a.ends_with("ReferralService/RequestReferral"))
        })
        .unwrap_or_else(|| panic!("no RequestReferral span from the police in {spans:#?}"));

    // A shelter span in the same trace whose ancestry reaches a police span.
    let crossing = spans.iter().find(|s| {
        if s.service != shelter_svc || s.trace_id != referral_rpc.trace_id {
            return false;
        }
        let mut cur = *s;
        for _ in 0..32 {
            match by_id.get(&(cur.trace_id.as_str(), cur.parent_span_id.as_str())) {
                Some(p) if p.service == police_svc => return true,
                Some(p) => cur = p,
                None => return false,
            }
        }
        false
    });
    let crossing = crossing.unwrap_or_else(|| {
        panic!(
            "no shelter span descends from the police's referral trace {}; spans: {spans:#?}",
            referral_rpc.trace_id
        )
    });
    assert_eq!(crossing.name, "waymark.bus.receive");

    for s in &spans {
        for a in &s.attributes {
            assert!(!a.contains(MARKER), "personal data in span {}: {a}", s.name);
        }
    }
    // The file is the collector's file-exporter shape: OTLP/JSON lines.
    let file = std::fs::read_to_string(sink.path()).unwrap();
    let first: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert!(first["resourceSpans"].is_array(), "{first}");
    assert!(file.contains(&referral_rpc.trace_id));
}
