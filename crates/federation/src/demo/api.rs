//! Thin typed access to the agencies of a running federation for the demo:
//! one gRPC channel per agency, the generated clients, and the small
//! builders (consents, disclosure targets, idempotency keys) every story
//! uses.

use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::agency_kind_to_proto as kind_to_proto;
use waymark_proto::v1 as pb;
use waymark_proto::v1::{
    case_service_client::CaseServiceClient, consent_service_client::ConsentServiceClient,
    handover_service_client::HandoverServiceClient, referral_service_client::ReferralServiceClient,
};
use waymark_proto::waymark::{labour, ngo, police, returndesk, shelter};
use waymark_types::{AgencyKind, Timestamp};

use crate::launch::Endpoint;

/// One agency, as the demo's back office calls it.
#[derive(Debug, Clone)]
pub struct Agency {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: AgencyKind,
    channel: Channel,
}

impl Agency {
    /// From a launcher endpoint.
    pub fn new(e: &Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind,
            channel: e.channel.clone(),
        }
    }

    /// The gRPC channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `waymark.v1.CaseService`.
    pub fn case(&self) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel.clone())
    }
    /// `waymark.v1.ConsentService`.
    pub fn consent(&self) -> ConsentServiceClient<Channel> {
        ConsentServiceClient::new(self.channel.clone())
    }
    /// `waymark.v1.HandoverService`.
    pub fn handover(&self) -> HandoverServiceClient<Channel> {
        HandoverServiceClient::new(self.channel.clone())
    }
    /// `waymark.v1.ReferralService`.
    pub fn referral(&self) -> ReferralServiceClient<Channel> {
        ReferralServiceClient::new(self.channel.clone())
    }
    /// `waymark.police.v1.PoliceService`.
    pub fn police(&self) -> police::v1::police_service_client::PoliceServiceClient<Channel> {
        police::v1::police_service_client::PoliceServiceClient::new(self.channel.clone())
    }
    /// `waymark.shelter.v1.ShelterService`.
    pub fn shelter(&self) -> shelter::v1::shelter_service_client::ShelterServiceClient<Channel> {
        shelter::v1::shelter_service_client::ShelterServiceClient::new(self.channel.clone())
    }
    /// `waymark.ngo.v1.NgoService`.
    pub fn ngo(&self) -> ngo::v1::ngo_service_client::NgoServiceClient<Channel> {
        ngo::v1::ngo_service_client::NgoServiceClient::new(self.channel.clone())
    }
    /// `waymark.returndesk.v1.ReturnDeskService`.
    pub fn returndesk(
        &self,
    ) -> returndesk::v1::return_desk_service_client::ReturnDeskServiceClient<Channel> {
        returndesk::v1::return_desk_service_client::ReturnDeskServiceClient::new(
            self.channel.clone(),
        )
    }
    /// `waymark.labour.v1.LabourService`.
    pub fn labour(&self) -> labour::v1::labour_service_client::LabourServiceClient<Channel> {
        labour::v1::labour_service_client::LabourServiceClient::new(self.channel.clone())
    }

    /// A disclosure to this agency for `purpose` on consent `consent_id`.
    pub fn on_consent(&self, consent_id: &str, purpose: pb::Purpose) -> pb::SendTo {
        pb::SendTo {
            recipient_id: self.id.clone(),
            recipient_kind: kind_to_proto(self.kind) as i32,
            purpose: purpose as i32,
            basis: Some(pb::DisclosureBasis {
                basis: Some(pb::disclosure_basis::Basis::ConsentId(
                    consent_id.to_owned(),
                )),
            }),
            shares: vec![],
            personal: None,
        }
    }

    /// A consent forward (no basis needed inside the consent's scope).
    pub fn forward(&self) -> pb::SendTo {
        pb::SendTo {
            recipient_id: self.id.clone(),
            recipient_kind: kind_to_proto(self.kind) as i32,
            ..Default::default()
        }
    }
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `now + d`, as a protobuf timestamp.
pub fn in_days(d: i64) -> prost_types::Timestamp {
    proto_from_timestamp(Timestamp::now().plus_days(d))
}

/// `now + ms`, as a protobuf timestamp.
pub fn in_millis(ms: i64) -> prost_types::Timestamp {
    proto_from_timestamp(Timestamp::now().plus_millis(ms))
}

/// Now, as a protobuf timestamp.
pub fn now() -> prost_types::Timestamp {
    proto_from_timestamp(Timestamp::now())
}

/// A consent to share with agencies of `kinds` for `purposes`, valid a
/// year; `child` marks it as given by a guardian.
pub fn consent(kinds: &[AgencyKind], purposes: &[pb::Purpose], child: bool) -> pb::ConsentGranted {
    pb::ConsentGranted {
        scope: Some(pb::ConsentScope {
            recipient_ids: vec![],
            recipient_kinds: kinds.iter().map(|k| kind_to_proto(*k) as i32).collect(),
            purposes: purposes.iter().map(|p| *p as i32).collect(),
            categories: vec![
                pb::DataCategory::CaseCore as i32,
                pb::DataCategory::Assistance as i32,
                pb::DataCategory::Reintegration as i32,
            ],
        }),
        valid_from: None,
        valid_until: Some(in_days(365)),
        method: pb::ConsentMethod::Written as i32,
        obtained_by_role: "social worker".into(),
        representative: if child {
            pb::RepresentativeRole::Guardian as i32
        } else {
            0
        },
        language: "en".into(),
        obtained_by_agency_id: String::new(),
    }
}

/// The custodian `agency` sees for `case`, `None` if it does not know it.
///
/// # Errors
/// Any status other than NOT_FOUND.
pub async fn custodian(agency: &Agency, case: &str) -> anyhow::Result<Option<String>> {
    match agency
        .case()
        .get_case(pb::GetCaseRequest {
            case_id: case.to_owned(),
        })
        .await
    {
        Ok(r) => Ok(r.into_inner().case.map(|c| c.custodian_id)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s).with_context(|| format!("GetCase at {}", agency.id)),
    }
}

/// The state of the offer `handover` at `agency`, `None` if it has not
/// received it (or does not know the case).
///
/// # Errors
/// Any status other than NOT_FOUND.
pub async fn handover_state(
    agency: &Agency,
    case: &str,
    handover: &str,
) -> anyhow::Result<Option<pb::HandoverState>> {
    let r = agency
        .handover()
        .list_handovers(pb::ListHandoversRequest {
            case_id: case.to_owned(),
        })
        .await;
    match r {
        Ok(r) => Ok(r
            .into_inner()
            .handovers
            .into_iter()
            .find(|h| h.handover_id == handover)
            .map(|h| h.state())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s).with_context(|| format!("ListHandovers at {}", agency.id)),
    }
}

/// The state of the referral `referral` at `agency`, `None` if it has not
/// received it (or does not know the case).
///
/// # Errors
/// Any status other than NOT_FOUND.
pub async fn referral_state(
    agency: &Agency,
    case: &str,
    referral: &str,
) -> anyhow::Result<Option<pb::ReferralState>> {
    let r = agency
        .referral()
        .list_referrals(pb::ListReferralsRequest {
            case_id: case.to_owned(),
            overdue_only: false,
        })
        .await;
    match r {
        Ok(r) => Ok(r
            .into_inner()
            .referrals
            .into_iter()
            .find(|x| x.referral_id == referral)
            .map(|x| x.state())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s).with_context(|| format!("ListReferrals at {}", agency.id)),
    }
}

/// The rule code of a FAILED_PRECONDITION, or an error for any other outcome.
///
/// # Errors
/// If the call succeeded or failed otherwise.
pub fn refusal_code<T>(r: Result<T, tonic::Status>, what: &str) -> anyhow::Result<String> {
    use tonic_types::StatusExt;
    match r {
        Ok(_) => anyhow::bail!("{what}: expected the rules to refuse it, but it was recorded"),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(s
            .get_details_error_info()
            .map_or_else(|| "(no rule code)".to_owned(), |i| i.reason)),
        Err(s) => Err(anyhow::anyhow!("{what}: {s}")),
    }
}

/// Polls `f` until it is true or `timeout` passes.
///
/// # Errors
/// On timeout, naming `what`; or the first error of `f`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
