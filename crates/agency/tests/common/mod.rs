//! A federation of real agencies for the tests: one real nats-server, real
//! sled journals in TestDirs, each agency served by `waymark_node::run` on
//! port 0 and called over TCP with the generated gRPC clients.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use waymark_agency::{Agency, AgencySettings};
use waymark_bus::Directory;
use waymark_crypto::seal::{EncryptionKey, RecipientKey};
use waymark_crypto::{AgencyKey, TrustedKey, proto_from_timestamp};
use waymark_node::{NodeConfig, RunningNode, Shutdown};
use waymark_policy::{RuleSet, RuleSetRef, RuleSets};
use waymark_proto::v1 as pb;
use waymark_proto::v1::{
    case_service_client::CaseServiceClient, consent_service_client::ConsentServiceClient,
    handover_service_client::HandoverServiceClient, inbox_service_client::InboxServiceClient,
    journal_service_client::JournalServiceClient, referral_service_client::ReferralServiceClient,
};
use waymark_testkit::{NatsServer, TestDir, connect};
use waymark_types::{AgencyId, AgencyKind, Timestamp};

pub const POLICE: &str = "police-a";
pub const SHELTER: &str = "shelter-b";
pub const NGO: &str = "ngo-c";
/// A rule set in which NGOs may not hold custody (for PERMISSION_DENIED).
pub const NGO_RULES: &str = "test-no-ngo-custody";

pub fn id(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

/// One running agency and clients for its services.
pub struct Node {
    pub agency: Agency,
    pub node: RunningNode,
    pub channel: Channel,
    pub dir: TestDir,
}

impl Node {
    pub fn case(&self) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel.clone())
    }
    pub fn consent(&self) -> ConsentServiceClient<Channel> {
        ConsentServiceClient::new(self.channel.clone())
    }
    pub fn referral(&self) -> ReferralServiceClient<Channel> {
        ReferralServiceClient::new(self.channel.clone())
    }
    pub fn handover(&self) -> HandoverServiceClient<Channel> {
        HandoverServiceClient::new(self.channel.clone())
    }
    pub fn inbox(&self) -> InboxServiceClient<Channel> {
        InboxServiceClient::new(self.channel.clone())
    }
    pub fn journal(&self) -> JournalServiceClient<Channel> {
        JournalServiceClient::new(self.channel.clone())
    }
    pub fn size(&self) -> u64 {
        self.agency.journal().size().unwrap()
    }
}

pub struct Federation {
    pub police: Node,
    pub shelter: Node,
    pub ngo: Node,
    pub keys: Vec<(String, AgencyKey)>,
    pub server: NatsServer,
}

impl Federation {
    pub async fn stop(self) {
        for n in [self.police, self.shelter, self.ngo] {
            n.node.stop().await.unwrap();
        }
    }

    /// Every agency's public key, for verifying exports.
    pub fn key_ring(&self) -> waymark_crypto::KeyRing {
        let mut r = waymark_crypto::KeyRing::new();
        for (_, k) in &self.keys {
            r.insert(trusted(k));
        }
        r
    }
}

fn trusted(k: &AgencyKey) -> TrustedKey {
    TrustedKey {
        key: k.public_key(),
        valid_from: Timestamp::from_millis(0),
        valid_until: None,
    }
}

fn rules() -> Arc<RuleSets> {
    let mut r = RuleSets::builtin();
    let mut p = RuleSet::coe_cets197_v1().params().clone();
    p.reference = RuleSetRef::new(NGO_RULES, 1);
    p.custodian_kinds.remove(&AgencyKind::Ngo);
    r.insert(RuleSet::new(p).unwrap());
    Arc::new(r)
}

pub async fn federation() -> Federation {
    federation_with(false).await
}

/// The test federation; with `shelter_rotated` the shelter has rotated its
/// encryption key while the directory (as senders see it) still lists only
/// the old one: it runs with a new current key and the old one retired.
pub async fn federation_with(shelter_rotated: bool) -> Federation {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let members = [
        (POLICE, AgencyKind::Police),
        (SHELTER, AgencyKind::Shelter),
        (NGO, AgencyKind::Ngo),
    ];
    let keys: Vec<(String, AgencyKey)> = members
        .iter()
        .map(|(n, _)| (n.to_string(), AgencyKey::generate()))
        .collect();
    // Police and shelter can be sent personal data; the NGO has no
    // encryption key in the directory (it cannot).
    let sealing: Vec<Option<EncryptionKey>> = members
        .iter()
        .map(|(_, kind)| (*kind != AgencyKind::Ngo).then(EncryptionKey::generate))
        .collect();
    let mut dir = Directory::new();
    for (((n, kind), (_, k)), e) in members.iter().zip(&keys).zip(&sealing) {
        dir.insert(id(n), *kind, [trusted(k)]);
        if let Some(e) = e {
            dir.insert_encryption_keys(
                &id(n),
                [RecipientKey {
                    public: e.public_key(),
                    id: e.key_id().to_owned(),
                    valid_from: Timestamp::from_millis(0),
                    valid_until: None,
                }],
            );
        }
    }
    let dir = Arc::new(dir);
    let rules = rules();
    let mut nodes = Vec::new();
    for (((n, kind), (_, k)), e) in members.iter().zip(&keys).zip(sealing) {
        let tmp = TestDir::new(n).unwrap();
        let mut s = AgencySettings::new(id(n), *kind, tmp.path().join("journal"));
        if shelter_rotated && *n == SHELTER {
            s.encryption_key = Some(EncryptionKey::generate());
            s.retired_encryption_keys = e.into_iter().collect();
        } else {
            s.encryption_key = e;
        }
        s.bus.receipt_timeout = Duration::from_secs(3);
        s.bus.backoff = (Duration::from_millis(20), Duration::from_millis(500));
        s.bus.ack_wait = Duration::from_secs(5);
        s.bus.checkpoint_interval = Duration::from_millis(300);
        s.checkpoint_interval = Duration::from_millis(200);
        if *kind == AgencyKind::Ngo {
            s.rule_set = RuleSetRef::new(NGO_RULES, 1);
        }
        let shutdown = Shutdown::new();
        let agency = Agency::start(
            s,
            js.clone(),
            dir.clone(),
            k.clone(),
            rules.clone(),
            &shutdown,
        )
        .unwrap();
        let mut config = NodeConfig::for_tests(*kind, tmp.path());
        config.agency.id = id(n);
        config.shutdown.grace_period = Duration::from_secs(3);
        let node = waymark_node::run(&config, agency.services(), shutdown)
            .await
            .unwrap();
        let channel = Channel::from_shared(format!("http://{}", node.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        nodes.push(Node {
            agency,
            node,
            channel,
            dir: tmp,
        });
    }
    let ngo = nodes.pop().unwrap();
    let shelter = nodes.pop().unwrap();
    let police = nodes.pop().unwrap();
    Federation {
        police,
        shelter,
        ngo,
        keys,
        server,
    }
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    proto_from_timestamp(t)
}

pub fn in_days(d: i64) -> prost_types::Timestamp {
    ts(Timestamp::now().plus_days(d))
}

/// Police opens a case; returns its id.
pub async fn open_case(n: &Node) -> String {
    n.case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: pb::IdentificationChannel::Police as i32,
            forms: vec![pb::ExploitationForm::Labour as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case_id
}

/// A consent covering shelters for accommodation and protection.
pub fn consent() -> pb::ConsentGranted {
    pb::ConsentGranted {
        scope: Some(pb::ConsentScope {
            recipient_ids: vec![],
            recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
            purposes: vec![
                pb::Purpose::Accommodation as i32,
                pb::Purpose::Protection as i32,
                pb::Purpose::Assistance as i32,
            ],
            categories: vec![
                pb::DataCategory::CaseCore as i32,
                pb::DataCategory::Assistance as i32,
            ],
        }),
        valid_from: None,
        valid_until: Some(in_days(90)),
        method: pb::ConsentMethod::Written as i32,
        obtained_by_role: "social worker".into(),
        representative: 0,
        language: "bg".into(),
        obtained_by_agency_id: String::new(),
    }
}

pub fn to_shelter(basis: Option<pb::DisclosureBasis>, purpose: pb::Purpose) -> pb::SendTo {
    pb::SendTo {
        recipient_id: SHELTER.into(),
        recipient_kind: pb::AgencyKind::Shelter as i32,
        purpose: if basis.is_some() { purpose as i32 } else { 0 },
        basis,
        shares: vec![],
        personal: None,
    }
}

pub fn by_consent(id: &str) -> Option<pb::DisclosureBasis> {
    Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(id.into())),
    })
}

/// Police grants a consent and forwards it to the shelter; returns its id.
pub async fn consent_at_shelter(f: &Federation, case: &str) -> String {
    let c = f
        .police
        .consent()
        .grant_consent(pb::GrantConsentRequest {
            idempotency_key: key(),
            case_id: case.into(),
            consent: Some(consent()),
        })
        .await
        .unwrap()
        .into_inner();
    f.police
        .case()
        .forward_event(pb::ForwardEventRequest {
            idempotency_key: key(),
            case_id: case.into(),
            event_id: c.consent_id.clone(),
            send_to: Some(to_shelter(None, pb::Purpose::Unspecified)),
        })
        .await
        .unwrap();
    c.consent_id
}
