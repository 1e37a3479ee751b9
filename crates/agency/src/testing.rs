//! A federation of real agencies for integration tests (feature `testing`).
//!
//! [`Federation::start`] starts one real `nats-server` (JetStream, its own
//! store directory, killed on drop), then each [`Member`]: a real sled
//! journal in a [`TestDir`], an [`Agency`] on the bus, served by
//! `waymark_node::run` on a free loopback port with the common services plus
//! whatever the member's `add` function adds (an agency crate's `add_to`),
//! and a gRPC [`Channel`] over TCP to it. Nothing is mocked.
//!
//! Tests use it from their dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! waymark-agency = { workspace = true, features = ["testing"] }
//! ```
//!
//! ```no_run
//! # async fn f() {
//! use waymark_agency::testing::{Federation, Member};
//! use waymark_types::AgencyKind;
//! # fn add_to(s: waymark_node::Services, _: waymark_agency::Recorder) -> waymark_node::Services { s }
//! let f = Federation::start(&[
//!     Member::new("police-a", AgencyKind::Police, add_to),
//!     Member::common("shelter-b", AgencyKind::Shelter),
//! ])
//! .await;
//! let case = f.get("police-a").open_case(false).await;
//! # f.stop().await; }
//! ```
//!
//! Settings are the production defaults except shorter bus timers (receipt
//! timeout, backoff, checkpoints), so delivery retries show up within a test.
//! Every wait is a poll with [`wait_for`] under [`DEADLINE`], a failure bound
//! sized for a loaded two-core machine, never a fixed sleep.
//!
//! # Panics
//! The harness panics with a message naming the step that failed (no
//! `nats-server`: the message names `bash .ci/install-nats`); it is for
//! tests only.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use waymark_bus::Directory;
use waymark_crypto::seal::{EncryptionKey, RecipientKey};
use waymark_crypto::{AgencyKey, TrustedKey, proto_from_timestamp};
use waymark_node::{NodeConfig, RunningNode, Services, Shutdown};
use waymark_policy::RuleSets;
use waymark_proto::v1 as pb;
use waymark_proto::v1::case_service_client::CaseServiceClient;
use waymark_proto::v1::consent_service_client::ConsentServiceClient;
use waymark_proto::v1::inbox_service_client::InboxServiceClient;
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

use crate::{Agency, AgencySettings, Recorder};

/// How long a test waits for a condition before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Adds an agency's own gRPC services (an agency crate's `add_to`).
pub type AddServices = fn(Services, Recorder) -> Services;

fn common_only(services: Services, _: Recorder) -> Services {
    services
}

/// One agency to start.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// Its agency id, e.g. `police-a`.
    pub id: &'static str,
    /// Its kind.
    pub kind: AgencyKind,
    /// Adds its agency-specific services to the common ones.
    pub add: AddServices,
}

impl Member {
    /// An agency serving the common services plus what `add` adds.
    pub fn new(id: &'static str, kind: AgencyKind, add: AddServices) -> Self {
        Self { id, kind, add }
    }

    /// An agency serving the common services only.
    pub fn common(id: &'static str, kind: AgencyKind) -> Self {
        Self::new(id, kind, common_only)
    }
}

/// One running agency of a [`Federation`].
pub struct TestAgency {
    /// Its id.
    pub id: AgencyId,
    /// Its kind.
    pub kind: AgencyKind,
    /// The agency (journal, bus, recorder).
    pub agency: Agency,
    /// A gRPC channel to its server.
    pub channel: Channel,
    node: RunningNode,
    _dir: TestDir,
}

impl std::fmt::Debug for TestAgency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAgency")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl TestAgency {
    /// Its write path, as its agency-specific services got it.
    pub fn recorder(&self) -> Recorder {
        self.agency.recorder()
    }

    /// A `CaseService` client.
    pub fn case(&self) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel.clone())
    }

    /// A `ConsentService` client.
    pub fn consent(&self) -> ConsentServiceClient<Channel> {
        ConsentServiceClient::new(self.channel.clone())
    }

    /// An `InboxService` client.
    pub fn inbox(&self) -> InboxServiceClient<Channel> {
        InboxServiceClient::new(self.channel.clone())
    }

    /// The number of durable entries in its journal.
    ///
    /// # Panics
    /// When the journal cannot be read.
    pub fn journal_size(&self) -> u64 {
        self.agency
            .journal()
            .size()
            .expect("reading the journal size")
    }

    /// Opens a case here (channel `POLICE`, no personal data); returns its id.
    ///
    /// # Panics
    /// When the call fails.
    pub async fn open_case(&self, presumed_child: bool) -> String {
        self.case()
            .open_case(pb::OpenCaseRequest {
                idempotency_key: key(),
                channel: pb::IdentificationChannel::Police as i32,
                presumed_child,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{} opening a case: {e:?}", self.id))
            .into_inner()
            .case_id
    }

    /// The case's timeline here (`CaseService.GetCaseTimeline`).
    ///
    /// # Errors
    /// The call's status (`NOT_FOUND` while the case is unknown here).
    pub async fn timeline(&self, case: &str) -> Result<Vec<pb::TimelineEntry>, Status> {
        Ok(self
            .case()
            .get_case_timeline(pb::GetCaseTimelineRequest {
                case_id: case.into(),
            })
            .await?
            .into_inner()
            .entries)
    }

    /// Waits until the case's timeline here shows `event_id` (e.g. an event
    /// another agency sent), and returns that entry.
    ///
    /// # Panics
    /// After [`DEADLINE`].
    pub async fn wait_for_event(&self, case: &str, event_id: &str) -> pb::TimelineEntry {
        let found = std::sync::Mutex::new(None);
        wait_for(
            DEADLINE,
            &format!("{event_id} in {}'s timeline", self.id),
            || {
                let found = &found;
                async move {
                    let entry = self
                        .timeline(case)
                        .await
                        .ok()
                        .and_then(|t| t.into_iter().find(|e| e.event_id == event_id));
                    let hit = entry.is_some();
                    *found.lock().expect("not poisoned") = entry;
                    hit
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        found
            .into_inner()
            .expect("not poisoned")
            .expect("found when the wait ends")
    }

    /// Records the person's written consent to share `categories` of
    /// `case` with agency `to` for `purposes` (valid 90 days) and forwards
    /// it to `to`, as a disclosure under it requires; returns the consent id.
    ///
    /// # Panics
    /// When a call fails.
    pub async fn consent_for(
        &self,
        case: &str,
        to: &TestAgency,
        purposes: &[pb::Purpose],
        categories: &[pb::DataCategory],
    ) -> String {
        let granted = self
            .consent()
            .grant_consent(pb::GrantConsentRequest {
                idempotency_key: key(),
                case_id: case.into(),
                consent: Some(pb::ConsentGranted {
                    scope: Some(pb::ConsentScope {
                        recipient_ids: vec![to.id.to_string()],
                        recipient_kinds: vec![],
                        purposes: purposes.iter().map(|p| *p as i32).collect(),
                        categories: categories.iter().map(|c| *c as i32).collect(),
                    }),
                    valid_from: None,
                    valid_until: Some(in_days(90)),
                    method: pb::ConsentMethod::Written as i32,
                    obtained_by_role: "social worker".into(),
                    representative: 0,
                    language: "bg".into(),
                    obtained_by_agency_id: String::new(),
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("{} granting a consent: {e:?}", self.id))
            .into_inner();
        self.case()
            .forward_event(pb::ForwardEventRequest {
                idempotency_key: key(),
                case_id: case.into(),
                event_id: granted.consent_id.clone(),
                send_to: Some(to.send_to(pb::Purpose::Unspecified, None)),
            })
            .await
            .unwrap_or_else(|e| panic!("{} forwarding a consent: {e:?}", self.id));
        granted.consent_id
    }

    /// A `SendTo` addressed to this agency with `purpose` and `basis` (no
    /// personal data). Without a basis the purpose is left unset too (the
    /// wire requires a basis with a purpose): a disclosure with no basis at
    /// all, which the rules refuse (`disclosure.no_basis`).
    pub fn send_to(&self, purpose: pb::Purpose, basis: Option<pb::DisclosureBasis>) -> pb::SendTo {
        pb::SendTo {
            recipient_id: self.id.to_string(),
            recipient_kind: waymark_policy::wire::vocab::agency_kind_to_proto(self.kind) as i32,
            purpose: if basis.is_some() { purpose as i32 } else { 0 },
            basis,
            shares: vec![],
            personal: None,
        }
    }
}

/// Real agencies on one real nats-server.
pub struct Federation {
    agencies: Vec<TestAgency>,
    _server: NatsServer,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.agencies).finish()
    }
}

/// The manifest entry of an encryption key valid from the epoch.
pub fn recipient(k: &EncryptionKey) -> RecipientKey {
    RecipientKey {
        public: k.public_key(),
        id: k.key_id().to_owned(),
        valid_from: Timestamp::from_millis(0),
        valid_until: None,
    }
}

fn trusted(k: &AgencyKey) -> TrustedKey {
    TrustedKey {
        key: k.public_key(),
        valid_from: Timestamp::from_millis(0),
        valid_until: None,
    }
}

impl Federation {
    /// Starts a nats-server and `members`, all in one federation directory
    /// under the built-in rule sets (`coe-cets197@1`).
    ///
    /// # Panics
    /// When the server or an agency does not start.
    pub async fn start(members: &[Member]) -> Self {
        let server = NatsServer::start().unwrap_or_else(|e| panic!("starting nats-server: {e}"));
        let (_client, js) = connect(&server)
            .await
            .unwrap_or_else(|e| panic!("connecting to nats-server: {e}"));
        let keys: Vec<AgencyKey> = members.iter().map(|_| AgencyKey::generate()).collect();
        let ids: Vec<AgencyId> = members
            .iter()
            .map(|m| AgencyId::new(m.id).unwrap_or_else(|e| panic!("agency id {}: {e}", m.id)))
            .collect();
        let sealing: Vec<EncryptionKey> =
            members.iter().map(|_| EncryptionKey::generate()).collect();
        let mut dir = Directory::new();
        for (((m, id), k), e) in members.iter().zip(&ids).zip(&keys).zip(&sealing) {
            dir.insert(id.clone(), m.kind, [trusted(k)]);
            dir.insert_encryption_keys(id, [recipient(e)]);
        }
        let dir = Arc::new(dir);
        let rules = Arc::new(RuleSets::builtin());
        let mut agencies = Vec::with_capacity(members.len());
        for (((m, id), k), e) in members.iter().zip(ids).zip(keys).zip(sealing) {
            let tmp = TestDir::new(m.id).unwrap_or_else(|e| panic!("temp dir: {e}"));
            let mut s = AgencySettings::new(id.clone(), m.kind, tmp.path().join("journal"));
            s.encryption_key = Some(e);
            s.bus.receipt_timeout = Duration::from_secs(3);
            s.bus.backoff = (Duration::from_millis(20), Duration::from_millis(500));
            s.bus.ack_wait = Duration::from_secs(5);
            s.bus.checkpoint_interval = Duration::from_millis(300);
            s.checkpoint_interval = Duration::from_millis(200);
            let shutdown = Shutdown::new();
            let agency = Agency::start(s, js.clone(), dir.clone(), k, rules.clone(), &shutdown)
                .unwrap_or_else(|e| panic!("starting agency {id}: {e}"));
            let mut config = NodeConfig::for_tests(m.kind, tmp.path());
            config.agency.id = id.clone();
            config.shutdown.grace_period = Duration::from_secs(3);
            let services = (m.add)(agency.services(), agency.recorder());
            let node = waymark_node::run(&config, services, shutdown)
                .await
                .unwrap_or_else(|e| panic!("serving agency {id}: {e}"));
            let channel = Channel::from_shared(format!("http://{}", node.local_addr()))
                .unwrap_or_else(|e| panic!("channel uri: {e}"))
                .connect()
                .await
                .unwrap_or_else(|e| panic!("connecting to agency {id}: {e}"));
            agencies.push(TestAgency {
                id,
                kind: m.kind,
                agency,
                channel,
                node,
                _dir: tmp,
            });
        }
        Self {
            agencies,
            _server: server,
        }
    }

    /// The agency with id `id`.
    ///
    /// # Panics
    /// When no member has that id.
    pub fn get(&self, id: &str) -> &TestAgency {
        self.agencies
            .iter()
            .find(|a| a.id.as_str() == id)
            .unwrap_or_else(|| panic!("no agency {id} in this federation"))
    }

    /// Stops every agency (graceful drain), then the server.
    ///
    /// # Panics
    /// When an agency does not stop cleanly.
    pub async fn stop(self) {
        for a in self.agencies {
            a.node
                .stop()
                .await
                .unwrap_or_else(|e| panic!("stopping agency {}: {e}", a.id));
        }
    }
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `t` as a protobuf timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    proto_from_timestamp(t)
}

/// Now plus `days` (negative: in the past), as a protobuf timestamp.
pub fn in_days(days: i64) -> prost_types::Timestamp {
    ts(Timestamp::now().plus_days(days))
}

/// A disclosure basis citing the consent `consent_id`.
pub fn by_consent(consent_id: &str) -> pb::DisclosureBasis {
    pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(consent_id.into())),
    }
}

/// A legal basis with a justification long enough for the built-in rule sets.
pub fn legal(basis: pb::LegalBasis) -> pb::DisclosureBasis {
    pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
            basis: basis as i32,
            justification: "Statutory duty to inform the competent authority under the national \
                            referral mechanism procedures."
                .into(),
        })),
    }
}

/// Asserts `s` is `INVALID_ARGUMENT` with a `BadRequest` violation of `field`.
///
/// # Panics
/// When it is not.
pub fn assert_invalid(s: &Status, field: &str) {
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let br = s
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {s:?}"));
    assert!(
        br.field_violations.iter().any(|v| v.field == field),
        "no violation of {field} in {s:?}"
    );
}

/// Asserts `s` has `code` and an `ErrorInfo` whose reason is the rule `rule`.
///
/// # Panics
/// When it does not.
pub fn assert_rule(s: &Status, code: Code, rule: &str) {
    assert_eq!(s.code(), code, "{s:?}");
    let info = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo details in {s:?}"));
    assert_eq!(info.reason, rule, "{s:?}");
    assert_eq!(info.domain, crate::DOMAIN);
}

/// Runs a recording call twice with the same request and checks the
/// idempotency contract end to end: the first records a new event that the
/// case's timeline at `agency` shows with `kind` (the body's kind token,
/// e.g. `signal_received`); the retry answers `replayed` with the same
/// event and journals nothing. Returns the first answer.
///
/// # Panics
/// When any of that does not hold.
pub async fn assert_records_once<F, Fut>(
    agency: &TestAgency,
    case: &str,
    kind: &str,
    mut call: F,
) -> pb::RecordedEvent
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<pb::RecordedEvent>, Status>>,
{
    let first = call()
        .await
        .unwrap_or_else(|e| panic!("recording {kind}: {e:?}"))
        .unwrap_or_else(|| panic!("{kind}: no RecordedEvent in the answer"));
    assert!(!first.replayed, "{kind}: a first call is not a replay");
    let entry = agency.wait_for_event(case, &first.event_id).await;
    assert_eq!(entry.event_kind, kind);
    assert_eq!(entry.seq, first.journal_seq);
    assert_eq!(entry.sender_id, agency.id.as_str());
    // Count what this agency recorded about the case (the journal as a
    // whole also grows by itself: witnessed checkpoints, receipts).
    let originated = || async {
        agency
            .timeline(case)
            .await
            .unwrap_or_else(|e| panic!("timeline of {case}: {e:?}"))
            .into_iter()
            .filter(|e| e.entry_kind == pb::EntryKind::Originated as i32)
            .count()
    };
    let before = originated().await;
    let again = call()
        .await
        .unwrap_or_else(|e| panic!("retrying {kind}: {e:?}"))
        .unwrap_or_else(|| panic!("{kind}: no RecordedEvent in the retry's answer"));
    assert!(
        again.replayed,
        "{kind}: a retry with the same key is a replay"
    );
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.journal_seq, first.journal_seq);
    assert_eq!(again.entry_hash, first.entry_hash);
    assert_eq!(
        originated().await,
        before,
        "{kind}: a retry records nothing"
    );
    first
}
