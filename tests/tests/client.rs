//! The Rust client (`waymark-client`) against real agency processes on a
//! real nats-server: retries keep one event per idempotency key (through a
//! TCP proxy that cuts a connection after the agency recorded the call, or
//! stalls its answer), refusals are never retried and decode with field
//! names and rule codes, the inbox follower resumes from its cursor file
//! after being dropped and reconnects when its stream breaks, and the
//! crate's examples run.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use waymark_client::proto::v1 as pb;
use waymark_client::proto::waymark::police::v1 as police;
use waymark_client::{Client, ConnectOptions, Error, InboxFollower, RetryPolicy};
use waymark_federation::demo::api::eventually;
use waymark_federation::{AgencyProgram, Endpoint, Federation, LaunchOptions, SAMPLE};
use waymark_testkit::{TestDir, workspace_root};
use waymark_types::AgencyKind;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/client/examples/open_and_refer.rs"]
mod open_and_refer;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/client/examples/follow_inbox.rs"]
mod follow_inbox;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/client/examples/import_htcds.rs"]
mod import_htcds;

async fn federation(dir: &Path, kinds: &[AgencyKind]) -> Federation {
    let mut opts = LaunchOptions::sample(
        dir,
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    // One agency of each kind asked for.
    let mut members = Vec::new();
    for k in kinds {
        members.push(*SAMPLE.iter().find(|a| a.kind == *k).unwrap());
    }
    opts.members = members;
    Federation::start(opts).await.unwrap()
}

fn endpoint(fed: &Federation, kind: AgencyKind) -> Endpoint {
    fed.endpoints()
        .values()
        .find(|e| e.kind == kind)
        .unwrap()
        .clone()
}

fn fast_retries() -> ConnectOptions {
    ConnectOptions {
        request_timeout: Duration::from_secs(3),
        retry: RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            multiplier: 2.0,
        },
        ..ConnectOptions::default()
    }
}

// ---- A TCP proxy that breaks HTTP/2 exchanges on purpose ----------------

/// Sits between the client and an agency. It reads the agency's HTTP/2
/// frames so it can cut the connection when the next answer starts (the
/// agency has then done the work) or swallow the next answer (the client
/// times out), and cut every connection at once.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: SocketAddr,
    cut_next: AtomicBool,
    stall_next: AtomicBool,
    /// Answers completed (HEADERS frames with END_STREAM passed on).
    answers: AtomicUsize,
    cuts: AtomicUsize,
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream,
            cut_next: AtomicBool::new(false),
            stall_next: AtomicBool::new(false),
            answers: AtomicUsize::new(0),
            cuts: AtomicUsize::new(0),
            generation: watch::channel(0).0,
        });
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, s.clone()));
            }
        });
        Self { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn answers(&self) -> usize {
        self.state.answers.load(Ordering::SeqCst)
    }

    /// Drops every open connection now.
    fn cut_all(&self) {
        self.state.generation.send_modify(|g| *g += 1);
    }
}

async fn relay(client: TcpStream, s: Arc<ProxyState>) {
    let Ok(upstream) = TcpStream::connect(s.upstream).await else {
        return;
    };
    let mut generation = s.generation.subscribe();
    let (mut cr, mut cw) = client.into_split();
    let (ur, mut uw) = upstream.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut cr, &mut uw) => {}
        _ = frames(ur, &mut cw, &s) => {}
        _ = generation.changed() => {}
    }
}

/// Passes the agency's frames on, frame by frame.
async fn frames(
    mut up: tokio::net::tcp::OwnedReadHalf,
    down: &mut tokio::net::tcp::OwnedWriteHalf,
    s: &ProxyState,
) -> std::io::Result<()> {
    const HEADERS: u8 = 0x1;
    const END_STREAM: u8 = 0x1;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut stalled = None;
    loop {
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..9 + len).collect();
            let (kind, flags) = (frame[3], frame[4]);
            let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
            if stream != 0 && stalled == Some(stream) {
                continue;
            }
            if kind == HEADERS && stream != 0 {
                if s.cut_next.swap(false, Ordering::SeqCst) {
                    s.cuts.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                if s.stall_next.swap(false, Ordering::SeqCst) {
                    stalled = Some(stream);
                    continue;
                }
                if flags & END_STREAM != 0 {
                    s.answers.fetch_add(1, Ordering::SeqCst);
                }
            }
            down.write_all(&frame).await?;
        }
    }
}

// ---- Tests ----------------------------------------------------------------

async fn timeline(client: &Client, case: &str) -> Vec<pb::TimelineEntry> {
    client
        .cases()
        .timeline(pb::GetCaseTimelineRequest {
            case_id: case.to_owned(),
        })
        .await
        .unwrap()
        .entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_one_event_per_key_and_refusals_are_not_retried() {
    let dir = TestDir::new("client-retry").unwrap();
    let fed = federation(dir.path(), &[AgencyKind::Police]).await;
    let police = endpoint(&fed, AgencyKind::Police);
    let proxy = Proxy::start(police.addr).await;
    let client = Client::connect(&proxy.url(), fast_retries()).await.unwrap();
    let direct = Client::connect(&police.url(), fast_retries())
        .await
        .unwrap();

    // The agency records the case, then the connection breaks before its
    // answer: the client retries with the same key and gets the replay.
    proxy.state.cut_next.store(true, Ordering::SeqCst);
    let opened = client
        .cases()
        .open(pb::OpenCaseRequest {
            idempotency_key: "client-test-open-1".into(),
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Labour as i32],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(proxy.state.cuts.load(Ordering::SeqCst), 1);
    let rec = opened.recorded.unwrap();
    assert!(rec.replayed, "the answer came from the retry, as a replay");
    let case = opened.case_id;
    let entries = timeline(&direct, &case).await;
    assert_eq!(entries.len(), 1, "one event for one key: {entries:#?}");
    assert_eq!(entries[0].event_id, rec.event_id);

    // With no key given the client makes one per call and keeps it across
    // attempts: a cut answer still records one signal.
    proxy.state.cut_next.store(true, Ordering::SeqCst);
    let signal = client
        .police()
        .record_signal(police::RecordSignalRequest {
            case_id: case.clone(),
            channel: pb::IdentificationChannel::Police as i32,
            indicators: vec!["ilo.debt_bondage".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(signal.recorded.unwrap().replayed);
    assert_eq!(timeline(&direct, &case).await.len(), 2);

    // An answer that never comes: the attempt times out (DEADLINE_EXCEEDED)
    // and the retry, same key, replays.
    proxy.state.stall_next.store(true, Ordering::SeqCst);
    let closed = client
        .cases()
        .close(pb::CloseCaseRequest {
            case_id: case.clone(),
            outcome: pb::CaseOutcome::NotAVictim as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(closed.recorded.unwrap().replayed);
    let entries = timeline(&direct, &case).await;
    assert_eq!(entries.len(), 3, "{entries:#?}");

    // A refusal is answered once and not retried.
    let before = proxy.answers();
    let again = client
        .cases()
        .close(pb::CloseCaseRequest {
            case_id: case.clone(),
            outcome: pb::CaseOutcome::NotAVictim as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again}");
    assert_eq!(again.rule(), Some("case.closed"), "{again}");
    assert_eq!(
        proxy.answers(),
        before + 1,
        "FAILED_PRECONDITION is not retried"
    );
    fed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_decode_with_field_names_and_rule_codes() {
    let dir = TestDir::new("client-errors").unwrap();
    let fed = federation(dir.path(), &[AgencyKind::Police, AgencyKind::Shelter]).await;
    let police = endpoint(&fed, AgencyKind::Police);
    let shelter = endpoint(&fed, AgencyKind::Shelter);
    let client = Client::connect(&police.url(), fast_retries())
        .await
        .unwrap();

    // INVALID_ARGUMENT: BadRequest field violations.
    let e = client
        .cases()
        .open(pb::OpenCaseRequest {
            idempotency_key: "k".repeat(200),
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert_eq!(e.violations()[0].field, "idempotency_key", "{e:?}");
    let case = client
        .cases()
        .open(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .case_id;
    let e = client
        .police()
        .record_signal(police::RecordSignalRequest {
            case_id: case.clone(),
            channel: pb::IdentificationChannel::Police as i32,
            indicators: vec!["She said her name is ...".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.violations()[0].field, "indicators[0]", "{e:?}");

    // A disclosure without a basis is malformed: the nested field is named.
    let mut to_shelter = pb::SendTo {
        recipient_id: shelter.id.to_string(),
        recipient_kind: pb::AgencyKind::Shelter as i32,
        purpose: pb::Purpose::Monitoring as i32,
        ..Default::default()
    };
    let refer = |send_to: pb::SendTo| pb::RequestReferralRequest {
        case_id: case.clone(),
        service: pb::ServiceType::Accommodation as i32,
        send_to: Some(send_to),
        ..Default::default()
    };
    let e = client
        .referrals()
        .request(refer(to_shelter.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.violations()[0].field, "send_to.basis", "{e:?}");

    // FAILED_PRECONDITION: the rule code and the rule set. The consent
    // covers accommodation, not monitoring.
    let consent = grant_shelter_consent(&client, &case).await;
    to_shelter.basis = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(consent)),
    });
    let e = client
        .referrals()
        .request(refer(to_shelter))
        .await
        .unwrap_err();
    match &e {
        Error::FailedPrecondition {
            rule,
            rule_set,
            message,
        } => {
            assert_eq!(rule, "consent.purpose_out_of_scope", "{e}");
            assert!(rule_set.is_some(), "{e:?}");
            assert!(!message.is_empty());
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }

    // NOT_FOUND: the resource named.
    let unknown = uuid_like(&case);
    let e = client
        .cases()
        .get(pb::GetCaseRequest {
            case_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    match &e {
        Error::NotFound {
            resource_type,
            resource_name,
            ..
        } => {
            assert_eq!(resource_type.as_deref(), Some("case"), "{e:?}");
            assert_eq!(resource_name.as_deref(), Some(unknown.as_str()), "{e:?}");
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }

    // A service this agency kind does not serve.
    let e = client
        .shelter()
        .capacity(Default::default())
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    fed.stop().await.unwrap();
}

/// Another id of the same shape as `case` (its last hex digit changed).
fn uuid_like(case: &str) -> String {
    let mut s = case.to_owned();
    let last = s.pop().unwrap();
    s.push(if last == '0' { '1' } else { '0' });
    s
}

/// The person's consent to share case core data with shelters for
/// accommodation; its id.
async fn grant_shelter_consent(client: &Client, case: &str) -> String {
    client
        .consents()
        .grant(pb::GrantConsentRequest {
            case_id: case.to_owned(),
            consent: Some(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                    purposes: vec![pb::Purpose::Accommodation as i32],
                    categories: vec![pb::DataCategory::CaseCore as i32],
                    ..Default::default()
                }),
                valid_until: Some(waymark_client::prost_types::Timestamp::from(
                    std::time::SystemTime::now() + Duration::from_secs(86_400 * 30),
                )),
                method: pb::ConsentMethod::Written as i32,
                obtained_by_role: "social worker".into(),
                language: "en".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .consent_id
}

/// The police forwards one consent per case to the shelter: one inbox item
/// at the shelter each.
async fn send_to_shelter(police: &Client, shelter_id: &str, n: usize) {
    for _ in 0..n {
        let case = police
            .cases()
            .open(pb::OpenCaseRequest {
                channel: pb::IdentificationChannel::Police as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .case_id;
        let consent = grant_shelter_consent(police, &case).await;
        police
            .cases()
            .forward_event(pb::ForwardEventRequest {
                case_id: case,
                event_id: consent,
                send_to: Some(pb::SendTo {
                    recipient_id: shelter_id.to_owned(),
                    recipient_kind: pb::AgencyKind::Shelter as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// The first `n` inbox items of `client`'s agency, from a fresh
/// subscription (the reference the follower is compared with).
async fn inbox_items(client: &Client, n: usize) -> Vec<u64> {
    let mut stream = client
        .inbox()
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("inbox items arrive within 60 s")
            .unwrap()
            .unwrap();
        out.push(item.cursor);
    }
    out
}

async fn next(f: &mut InboxFollower) -> pb::SubscribeResponse {
    tokio::time::timeout(Duration::from_secs(60), f.next())
        .await
        .expect("the follower delivers within 60 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_follower_resumes_from_its_cursor_file_and_reconnects() {
    let dir = TestDir::new("client-inbox").unwrap();
    let fed = federation(dir.path(), &[AgencyKind::Police, AgencyKind::Shelter]).await;
    let police = Client::connect(&endpoint(&fed, AgencyKind::Police).url(), fast_retries())
        .await
        .unwrap();
    let shelter = endpoint(&fed, AgencyKind::Shelter);
    let proxy = Proxy::start(shelter.addr).await;
    let through_proxy = Client::connect(&proxy.url(), fast_retries()).await.unwrap();
    let cursor_file = dir.path().join("shelter.cursor");

    send_to_shelter(&police, shelter.id.as_str(), 3).await;
    let first = inbox_items(&through_proxy, 3).await;

    // Follower A handles two items, then is dropped without committing the
    // second (a crash while handling it).
    let mut a = InboxFollower::open(through_proxy.clone(), &cursor_file).unwrap();
    assert_eq!(a.committed(), 0);
    assert_eq!(next(&mut a).await.cursor, first[0]);
    assert_eq!(next(&mut a).await.cursor, first[1]);
    drop(a);
    let stored: u64 = std::fs::read_to_string(&cursor_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        stored, first[0],
        "the first item was committed on the next call"
    );

    // Follower B resumes after the stored cursor: the item being handled
    // comes again, nothing before it does.
    let mut b = InboxFollower::open(through_proxy.clone(), &cursor_file).unwrap();
    assert_eq!(b.committed(), first[0]);
    let mut got = vec![next(&mut b).await.cursor, next(&mut b).await.cursor];
    assert_eq!(got, first[1..]);

    // Every connection breaks; new items arrive; B reconnects after its
    // cursor and misses nothing.
    proxy.cut_all();
    send_to_shelter(&police, shelter.id.as_str(), 3).await;
    for _ in 0..3 {
        got.push(next(&mut b).await.cursor);
    }
    b.commit().await.unwrap();
    let all = inbox_items(&through_proxy, 6).await;
    assert_eq!(got, all[1..], "after the cursor: every item once, in order");
    let stored: u64 = std::fs::read_to_string(&cursor_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(stored, all[5]);
    fed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run_against_real_agencies() {
    let dir = TestDir::new("client-examples").unwrap();
    let fed = federation(dir.path(), &[AgencyKind::Police, AgencyKind::Shelter]).await;
    let police = endpoint(&fed, AgencyKind::Police);
    let shelter = endpoint(&fed, AgencyKind::Shelter);

    // open_and_refer: at the police, for the shelter.
    let o = open_and_refer::run(&police.url(), shelter.id.as_str())
        .await
        .unwrap();
    assert_eq!(o.refused_rule, "consent.purpose_out_of_scope");
    let at_shelter = Client::connect(&shelter.url(), fast_retries())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the shelter lists the referral",
        || async {
            let r = at_shelter
                .referrals()
                .list(pb::ListReferralsRequest {
                    case_id: o.case_id.clone(),
                    ..Default::default()
                })
                .await;
            Ok(match r {
                Ok(r) => r.referrals.iter().any(|x| x.referral_id == o.referral_id),
                Err(Error::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            })
        },
    )
    .await
    .unwrap();

    // follow_inbox: the shelter's inbox holds the forwarded consent and the
    // referral; a second run resumes after them.
    let cursor = dir.path().join("follow.cursor");
    let mut lines = Vec::new();
    let seen = follow_inbox::run(&shelter.url(), &cursor, Some(2), |item| {
        lines.push(follow_inbox::line(item));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 2);
    assert!(lines[1].contains(&o.referral_id), "{lines:#?}");
    let stored = std::fs::read_to_string(&cursor).unwrap();
    assert_eq!(stored.trim(), seen[1].to_string());

    // import_htcds: the sample file at the police.
    let sample = workspace_root().join("crates/client/tests/data/htcds_sample.csv");
    let report = import_htcds::run(&police.url(), &sample).await.unwrap();
    assert_eq!(
        (
            report.imported(),
            report.already_present(),
            report.rejected()
        ),
        (5, 0, 6),
        "{report}"
    );
    fed.stop().await.unwrap();
}
