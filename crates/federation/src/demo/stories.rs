//! The demo's stories: each drives one case through the federation over
//! gRPC, as the agencies' back-office systems would, and says what the end
//! state must be.

use anyhow::Context;
use waymark_proto::v1 as pb;
use waymark_proto::waymark::{labour, ngo, police, returndesk, shelter};
use waymark_types::AgencyKind;

use super::api::{Agency, consent, in_days, in_millis, key, now, refusal_code};
use super::steps::{
    accept, erase, forward, grant, identify, offer, open, wait_acknowledged, wait_custodian,
    wait_handover, wait_pending, wait_referral,
};

/// The six stories the cases cycle through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    /// An adult foreign victim: identification, shelter, reflection period,
    /// voluntary return, reception, reintegration with monitoring.
    AdultReturn,
    /// The first shelter has no free place and declines; the police
    /// re-offers custody to the other shelter.
    Reoffered,
    /// A child: return only after a favourable best-interests assessment.
    Child,
    /// The person withdraws consent midway; the shelter acknowledges and
    /// nothing more is shared on it.
    Withdrawal,
    /// The person refuses disclosure: the handover is refused by the rules
    /// and nothing leaves the police.
    Refusal,
    /// An anonymous hotline call to an NGO, assisted without identification.
    AnonymousHotline,
}

impl Story {
    /// The story of case number `i`.
    pub fn of(i: usize) -> Self {
        [
            Self::AdultReturn,
            Self::Reoffered,
            Self::Child,
            Self::Withdrawal,
            Self::Refusal,
            Self::AnonymousHotline,
        ][i % 6]
    }

    /// One line for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AdultReturn => {
                "adult: identified, sheltered, reflection period, voluntary return, reception, reintegration"
            }
            Self::Reoffered => "handover declined by a full shelter, re-offered to another",
            Self::Child => "child: return refused until a best-interests assessment",
            Self::Withdrawal => {
                "consent withdrawn midway; acknowledged; further sharing refused; personal data erased"
            }
            Self::Refusal => "person refuses disclosure: the handover is refused, nothing shared",
            Self::AnonymousHotline => "anonymous hotline intake at an NGO, assisted",
        }
    }
}

/// The agencies of the sample federation, by role.
#[derive(Debug, Clone)]
pub struct Cast {
    /// Police.
    pub police: Agency,
    /// The shelter that is full.
    pub shelter_full: Agency,
    /// The shelter with places (and for children).
    pub shelter: Agency,
    /// The NGO.
    pub ngo: Agency,
    /// The IOM return desk.
    pub returndesk: Agency,
    /// The ministry of labour.
    pub labour: Agency,
}

impl Cast {
    /// Every agency.
    pub fn all(&self) -> [&Agency; 6] {
        [
            &self.police,
            &self.shelter_full,
            &self.shelter,
            &self.ngo,
            &self.returndesk,
            &self.labour,
        ]
    }
}

/// What a story did, and the end state every agency must show.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The case id.
    pub case: String,
    /// The story.
    pub story: Story,
    /// The agency that must hold custody at the end.
    pub custodian: String,
    /// Agencies that must know the case and name `custodian` as its custodian.
    pub agree: Vec<String>,
    /// Agencies that must know the case (their view of custody may be older).
    pub parties: Vec<String>,
    /// Rule codes of the refusals the story provoked on purpose.
    pub refusals: Vec<String>,
    /// Other facts worth showing.
    pub notes: Vec<String>,
}

/// Drives one case of `story`.
///
/// # Errors
/// If any call that must succeed fails, or a refusal the story provokes on
/// purpose does not come.
pub async fn run(c: &Cast, story: Story) -> anyhow::Result<Outcome> {
    match story {
        Story::AdultReturn => adult_return(c).await,
        Story::Reoffered => reoffered(c).await,
        Story::Child => child(c).await,
        Story::Withdrawal => withdrawal(c).await,
        Story::Refusal => refusal(c).await,
        Story::AnonymousHotline => hotline(c).await,
    }
}

fn ids(a: &[&Agency]) -> Vec<String> {
    a.iter().map(|x| x.id.clone()).collect()
}

async fn adult_return(c: &Cast) -> anyhow::Result<Outcome> {
    use pb::Purpose as P;
    let case = open(&c.police, pb::IdentificationChannel::Police, false, false).await?;
    identify(c, &case).await?;
    c.police
        .police()
        .record_proceedings_status(police::v1::RecordProceedingsStatusRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            cooperation: pb::CooperationStatus::Undecided as i32,
            stage: pb::ProceedingsStage::Investigation as i32,
            witness: false,
            send_to: None,
        })
        .await
        .context("RecordProceedingsStatus")?;
    let consent_id = grant(
        &c.police,
        &case,
        consent(
            &[
                AgencyKind::Shelter,
                AgencyKind::ReturnDesk,
                AgencyKind::Labour,
            ],
            &[
                P::Accommodation,
                P::Protection,
                P::Assistance,
                P::Return,
                P::Reintegration,
                P::Monitoring,
            ],
            false,
        ),
    )
    .await?;
    forward(&c.police, &case, &consent_id, &c.shelter).await?;
    let h = offer(&c.police, &case, &c.shelter, &consent_id, P::Accommodation)
        .await
        .context("OfferHandover to the shelter")?;
    accept(&c.shelter, &case, &h).await?;

    let mut s = c.shelter.shelter();
    s.start_reflection_period(shelter::v1::StartReflectionPeriodRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        starts_at: Some(now()),
        ends_at: Some(in_days(90)),
        send_to: None,
    })
    .await
    .context("StartReflectionPeriod")?;
    s.admit_person(shelter::v1::AdmitPersonRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        planned_days: 90,
        send_to: None,
    })
    .await
    .context("AdmitPerson")?;
    s.agree_safety_plan(shelter::v1::AgreeSafetyPlanRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        review_by: Some(in_days(30)),
        signed_by_person: true,
        send_to: None,
    })
    .await
    .context("AgreeSafetyPlan")?;
    s.record_service_delivered(shelter::v1::RecordServiceDeliveredRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        service: pb::ServiceType::Psychological as i32,
        send_to: None,
    })
    .await
    .context("RecordServiceDelivered")?;

    // The person asks to go home: custody to the return desk.
    forward(&c.shelter, &case, &consent_id, &c.returndesk).await?;
    let h = offer(&c.shelter, &case, &c.returndesk, &consent_id, P::Return)
        .await
        .context("OfferHandover to the return desk")?;
    accept(&c.returndesk, &case, &h).await?;
    let mut r = c.returndesk.returndesk();
    r.request_return(returndesk::v1::RequestReturnRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        requested_by_person: true,
        send_to: None,
    })
    .await
    .context("RequestReturn")?;
    r.assess_return_risk(returndesk::v1::AssessReturnRiskRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        risk: pb::RiskLevel::Low as i32,
        child: false,
        best_interests_ok: true,
        send_to: None,
    })
    .await
    .context("AssessReturnRisk")?;
    r.issue_travel_documents(returndesk::v1::IssueTravelDocumentsRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        valid_until: Some(in_days(60)),
        send_to: None,
    })
    .await
    .context("IssueTravelDocuments")?;
    r.schedule_return(returndesk::v1::ScheduleReturnRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        departure_at: Some(in_millis(1000)),
        send_to: None,
    })
    .await
    .context("ScheduleReturn")?;
    r.record_departure(returndesk::v1::RecordDepartureRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        escorted: true,
        send_to: None,
    })
    .await
    .context("RecordDeparture")?;
    r.confirm_reception(returndesk::v1::ConfirmReceptionRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        partner_id: "origin-partner-ngo".into(),
        send_to: None,
    })
    .await
    .context("ConfirmReception")?;

    // Reintegration: custody to the ministry of labour.
    forward(&c.returndesk, &case, &consent_id, &c.labour).await?;
    let h = offer(
        &c.returndesk,
        &case,
        &c.labour,
        &consent_id,
        P::Reintegration,
    )
    .await
    .context("OfferHandover to labour")?;
    accept(&c.labour, &case, &h).await?;
    let mut l = c.labour.labour();
    l.agree_reintegration_plan(labour::v1::AgreeReintegrationPlanRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        review_by: Some(in_days(180)),
        send_to: None,
    })
    .await
    .context("AgreeReintegrationPlan")?;
    for m in [
        pb::ReintegrationMeasure::VocationalTraining,
        pb::ReintegrationMeasure::JobReferral,
    ] {
        l.record_reintegration_measure(labour::v1::RecordReintegrationMeasureRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            measure: m as i32,
            send_to: None,
        })
        .await
        .context("RecordReintegrationMeasure")?;
    }
    l.schedule_monitoring(labour::v1::ScheduleMonitoringRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        visits: vec![in_days(30), in_days(90), in_days(180)],
        send_to: None,
    })
    .await
    .context("ScheduleMonitoring")?;
    l.record_monitoring_visit(labour::v1::RecordMonitoringVisitRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        mode: pb::ContactMode::Phone as i32,
        concerns: false,
        send_to: None,
    })
    .await
    .context("RecordMonitoringVisit")?;
    wait_custodian(&c.returndesk, &case, &c.labour.id).await?;
    Ok(Outcome {
        case,
        story: Story::AdultReturn,
        custodian: c.labour.id.clone(),
        agree: ids(&[&c.returndesk, &c.labour]),
        parties: ids(&[&c.police, &c.shelter, &c.returndesk, &c.labour]),
        refusals: vec![],
        notes: vec!["custody: police → shelter → return desk → labour".into()],
    })
}

async fn reoffered(c: &Cast) -> anyhow::Result<Outcome> {
    use pb::Purpose as P;
    let case = open(&c.police, pb::IdentificationChannel::Border, false, false).await?;
    identify(c, &case).await?;
    let consent_id = grant(
        &c.police,
        &case,
        consent(
            &[AgencyKind::Shelter],
            &[P::Accommodation, P::Protection, P::Assistance],
            false,
        ),
    )
    .await?;
    forward(&c.police, &case, &consent_id, &c.shelter_full).await?;
    let first = offer(
        &c.police,
        &case,
        &c.shelter_full,
        &consent_id,
        P::Accommodation,
    )
    .await
    .context("OfferHandover to the first shelter")?;
    wait_pending(&c.shelter_full, &case, &first).await?;
    c.shelter_full
        .handover()
        .reject_handover(pb::RejectHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            handover_id: first.clone(),
            reason: pb::DeclineReason::NoCapacity as i32,
            detail: "no free place".into(),
        })
        .await
        .context("RejectHandover")?;
    // The police sees the rejection, then offers to the other shelter.
    wait_handover(&c.police, &case, &first, pb::HandoverState::Rejected).await?;
    forward(&c.police, &case, &consent_id, &c.shelter).await?;
    let second = offer(&c.police, &case, &c.shelter, &consent_id, P::Accommodation)
        .await
        .context("OfferHandover to the second shelter")?;
    accept(&c.shelter, &case, &second).await?;
    c.shelter
        .shelter()
        .admit_person(shelter::v1::AdmitPersonRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            planned_days: 30,
            send_to: None,
        })
        .await
        .context("AdmitPerson")?;
    wait_custodian(&c.police, &case, &c.shelter.id).await?;
    Ok(Outcome {
        case,
        story: Story::Reoffered,
        custodian: c.shelter.id.clone(),
        agree: ids(&[&c.police, &c.shelter]),
        parties: ids(&[&c.police, &c.shelter_full, &c.shelter]),
        refusals: vec![],
        notes: vec![format!(
            "offer {first} declined by {} (no capacity); re-offered and accepted",
            c.shelter_full.id
        )],
    })
}

async fn child(c: &Cast) -> anyhow::Result<Outcome> {
    use pb::Purpose as P;
    let case = open(
        &c.police,
        pb::IdentificationChannel::SocialServices,
        true,
        false,
    )
    .await?;
    identify(c, &case).await?;
    let consent_id = grant(
        &c.police,
        &case,
        consent(
            &[AgencyKind::Shelter, AgencyKind::ReturnDesk],
            &[P::Accommodation, P::Protection, P::Assistance, P::Return],
            true,
        ),
    )
    .await?;
    forward(&c.police, &case, &consent_id, &c.shelter).await?;
    let h = offer(&c.police, &case, &c.shelter, &consent_id, P::Protection)
        .await
        .context("OfferHandover to the shelter")?;
    accept(&c.shelter, &case, &h).await?;
    // The shelter asks the return desk to assess a return (a referral:
    // custody stays with the shelter).
    forward(&c.shelter, &case, &consent_id, &c.returndesk).await?;
    let referral = c
        .shelter
        .referral()
        .request_referral(pb::RequestReferralRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            service: pb::ServiceType::VoluntaryReturn as i32,
            respond_by: Some(in_days(5)),
            urgent: false,
            send_to: Some(c.returndesk.on_consent(&consent_id, P::Return)),
        })
        .await
        .context("RequestReferral")?
        .into_inner()
        .referral_id;
    let target = pb::ReferralTarget {
        case_id: case.clone(),
        referral_id: referral.clone(),
    };
    wait_referral(&c.returndesk, &case, &referral).await?;
    c.returndesk
        .referral()
        .accept_referral(pb::AcceptReferralRequest {
            idempotency_key: key(),
            referral: Some(target.clone()),
        })
        .await
        .context("AcceptReferral")?;
    let mut r = c.returndesk.returndesk();
    r.request_return(returndesk::v1::RequestReturnRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        requested_by_person: true,
        send_to: None,
    })
    .await
    .context("RequestReturn")?;
    let schedule = || returndesk::v1::ScheduleReturnRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        departure_at: Some(in_days(14)),
        send_to: None,
    };
    let refused = refusal_code(
        r.schedule_return(schedule()).await,
        "scheduling a child's return without a best-interests assessment",
    )?;
    r.assess_return_risk(returndesk::v1::AssessReturnRiskRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        risk: pb::RiskLevel::Low as i32,
        child: true,
        best_interests_ok: true,
        send_to: None,
    })
    .await
    .context("AssessReturnRisk")?;
    r.schedule_return(schedule())
        .await
        .context("ScheduleReturn after the assessment")?;
    Ok(Outcome {
        case,
        story: Story::Child,
        custodian: c.shelter.id.clone(),
        agree: ids(&[&c.police, &c.shelter]),
        parties: ids(&[&c.police, &c.shelter, &c.returndesk]),
        refusals: vec![refused],
        notes: vec!["return scheduled only after a favourable best-interests assessment".into()],
    })
}

async fn withdrawal(c: &Cast) -> anyhow::Result<Outcome> {
    use pb::Purpose as P;
    let case = open(&c.police, pb::IdentificationChannel::Police, false, false).await?;
    identify(c, &case).await?;
    let mut scope = consent(
        &[AgencyKind::Shelter, AgencyKind::Ngo],
        &[P::Accommodation, P::Protection, P::Assistance],
        false,
    );
    // This person also agreed to their name and language going to the
    // shelter: sealed to the shelter's key, never in any journal.
    if let Some(s) = scope.scope.as_mut() {
        s.categories.push(pb::DataCategory::Identity as i32);
    }
    let consent_id = grant(&c.police, &case, scope).await?;
    forward(&c.police, &case, &consent_id, &c.shelter).await?;
    let h = c
        .police
        .handover()
        .offer_handover(pb::OfferHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            send_to: Some(pb::SendTo {
                shares: vec![pb::DataCategory::Identity as i32],
                personal: Some(pb::PersonalData {
                    full_name: "Demo Person (fictional)".into(),
                    languages: vec!["ro".into(), "bg".into()],
                    ..Default::default()
                }),
                ..c.shelter.on_consent(&consent_id, P::Accommodation)
            }),
            expires_at: Some(in_days(3)),
            reason: "the person needs accommodation".into(),
        })
        .await
        .context("OfferHandover with sealed personal data")?
        .into_inner()
        .handover_id;
    accept(&c.shelter, &case, &h).await?;
    wait_custodian(&c.police, &case, &c.shelter.id).await?;
    c.police
        .consent()
        .withdraw_consent(pb::WithdrawConsentRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            consent_id: consent_id.clone(),
            effective_at: None,
        })
        .await
        .context("WithdrawConsent")?;
    wait_acknowledged(&c.police, &case, &consent_id).await?;
    // The shelter may no longer share on the withdrawn consent.
    let refused = refusal_code(
        c.shelter
            .referral()
            .request_referral(pb::RequestReferralRequest {
                idempotency_key: key(),
                case_id: case.clone(),
                service: pb::ServiceType::Counselling as i32,
                respond_by: None,
                urgent: false,
                send_to: Some(c.ngo.on_consent(&consent_id, P::Assistance)),
            })
            .await,
        "a referral on a withdrawn consent",
    )?;
    // The person also asks for their data to be erased: police destroys
    // its per-case key and tells the shelter, which erases and acknowledges.
    erase(&c.police, &case, &c.shelter).await?;
    Ok(Outcome {
        case,
        story: Story::Withdrawal,
        custodian: c.shelter.id.clone(),
        agree: ids(&[&c.police, &c.shelter]),
        parties: ids(&[&c.police, &c.shelter]),
        refusals: vec![refused],
        notes: vec![
            "withdrawal acknowledged by every recipient".into(),
            "personal data sealed to the shelter, then erased at police and shelter".into(),
        ],
    })
}

async fn refusal(c: &Cast) -> anyhow::Result<Outcome> {
    use pb::Purpose as P;
    let case = open(&c.police, pb::IdentificationChannel::Police, false, false).await?;
    let consent_id = grant(
        &c.police,
        &case,
        consent(&[AgencyKind::Shelter], &[P::Accommodation], false),
    )
    .await?;
    c.police
        .case()
        .record_refusal(pb::RecordRefusalRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            scope: pb::RefusalScope::Disclosure as i32,
            agency_ids: vec![],
            purposes: vec![],
        })
        .await
        .context("RecordRefusal")?;
    let refused = refusal_code(
        offer(&c.police, &case, &c.shelter, &consent_id, P::Accommodation).await,
        "a handover after the person refused disclosure",
    )?;
    Ok(Outcome {
        case,
        story: Story::Refusal,
        custodian: c.police.id.clone(),
        agree: ids(&[&c.police]),
        parties: ids(&[&c.police]),
        refusals: vec![refused],
        notes: vec![],
    })
}

async fn hotline(c: &Cast) -> anyhow::Result<Outcome> {
    let case = open(&c.ngo, pb::IdentificationChannel::Hotline, false, true).await?;
    let mut n = c.ngo.ngo();
    n.record_hotline_intake(ngo::v1::RecordHotlineIntakeRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        anonymous: true,
        third_party: false,
        send_to: None,
    })
    .await
    .context("RecordHotlineIntake")?;
    n.record_outreach_contact(ngo::v1::RecordOutreachContactRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        setting: "workplace".into(),
        send_to: None,
    })
    .await
    .context("RecordOutreachContact")?;
    n.record_assistance(ngo::v1::RecordAssistanceRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        service: pb::ServiceType::Counselling as i32,
        send_to: None,
    })
    .await
    .context("RecordAssistance")?;
    n.record_monitoring_contact(ngo::v1::RecordMonitoringContactRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        mode: pb::ContactMode::Phone as i32,
        concerns: false,
        send_to: None,
    })
    .await
    .context("RecordMonitoringContact")?;
    Ok(Outcome {
        case,
        story: Story::AnonymousHotline,
        custodian: c.ngo.id.clone(),
        agree: ids(&[&c.ngo]),
        parties: ids(&[&c.ngo]),
        refusals: vec![],
        notes: vec![],
    })
}

/// Checks the end state of `o` at every agency: the parties know the case,
/// those in `agree` name the expected custodian, everyone else has never
/// heard of it (nothing was shared without a reason).
///
/// # Errors
/// Naming the agency and what it shows.
pub async fn check(c: &Cast, o: &Outcome) -> anyhow::Result<()> {
    for a in c.all() {
        let seen = super::api::custodian(a, &o.case).await?;
        if o.agree.contains(&a.id) {
            if seen.as_deref() != Some(o.custodian.as_str()) {
                wait_custodian(a, &o.case, &o.custodian)
                    .await
                    .with_context(|| format!("case {} ({:?})", o.case, o.story))?;
            }
        } else if o.parties.contains(&a.id) {
            if seen.is_none() {
                anyhow::bail!("case {} ({:?}): {} does not know it", o.case, o.story, a.id);
            }
        } else if seen.is_some() {
            anyhow::bail!(
                "case {} ({:?}): {} knows it but was never told",
                o.case,
                o.story,
                a.id
            );
        }
    }
    Ok(())
}

/// Prepares the federation for the stories: the first shelter reports no
/// free places, the second has room and takes children.
///
/// # Errors
/// If a call fails.
pub async fn setup(c: &Cast) -> anyhow::Result<()> {
    for (s, free) in [(&c.shelter_full, 0), (&c.shelter, 12)] {
        s.shelter()
            .update_capacity(shelter::v1::UpdateCapacityRequest {
                idempotency_key: key(),
                total_places: 12,
                free_places: free,
                accepts_children: free > 0,
            })
            .await
            .with_context(|| format!("UpdateCapacity at {}", s.id))?;
    }
    Ok(())
}
