//! The steps the demo's stories are made of: one gRPC call each (or a wait
//! until another agency has received what was sent), with the call named in
//! the error.

use std::time::Duration;

use anyhow::Context;
use waymark_proto::v1 as pb;
use waymark_proto::waymark::police;

use super::api::{Agency, custodian, eventually, handover_state, in_days, key, referral_state};
use super::stories::Cast;

/// How long a story waits for an event to reach another agency.
const DELIVERY: Duration = Duration::from_secs(60);

pub(super) async fn open(
    at: &Agency,
    channel: pb::IdentificationChannel,
    child: bool,
    anonymous: bool,
) -> anyhow::Result<String> {
    let r = at
        .case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: channel as i32,
            presumed_child: child,
            forms: vec![pb::ExploitationForm::Labour as i32],
            anonymous,
            personal: None,
        })
        .await
        .context("OpenCase")?;
    Ok(r.into_inner().case_id)
}

pub(super) async fn identify(c: &Cast, case: &str) -> anyhow::Result<()> {
    let mut p = c.police.police();
    p.record_signal(police::v1::RecordSignalRequest {
        idempotency_key: key(),
        case_id: case.into(),
        channel: pb::IdentificationChannel::LabourInspection as i32,
        indicators: vec!["ilo.debt_bondage".into(), "ilo.withheld_documents".into()],
        forms: vec![pb::ExploitationForm::Labour as i32],
        send_to: None,
    })
    .await
    .context("RecordSignal")?;
    p.decide_reasonable_grounds(police::v1::DecideReasonableGroundsRequest {
        idempotency_key: key(),
        case_id: case.into(),
        positive: true,
        decided_by_role: "duty inspector".into(),
        send_to: None,
    })
    .await
    .context("DecideReasonableGrounds")?;
    Ok(())
}

pub(super) async fn grant(
    at: &Agency,
    case: &str,
    c: pb::ConsentGranted,
) -> anyhow::Result<String> {
    Ok(at
        .consent()
        .grant_consent(pb::GrantConsentRequest {
            idempotency_key: key(),
            case_id: case.into(),
            consent: Some(c),
        })
        .await
        .context("GrantConsent")?
        .into_inner()
        .consent_id)
}

pub(super) async fn forward(
    from: &Agency,
    case: &str,
    event: &str,
    to: &Agency,
) -> anyhow::Result<()> {
    from.case()
        .forward_event(pb::ForwardEventRequest {
            idempotency_key: key(),
            case_id: case.into(),
            event_id: event.into(),
            send_to: Some(to.forward()),
        })
        .await
        .with_context(|| format!("ForwardEvent to {}", to.id))?;
    Ok(())
}

pub(super) async fn offer(
    from: &Agency,
    case: &str,
    to: &Agency,
    consent_id: &str,
    purpose: pb::Purpose,
) -> Result<String, tonic::Status> {
    from.handover()
        .offer_handover(pb::OfferHandoverRequest {
            idempotency_key: key(),
            case_id: case.into(),
            send_to: Some(to.on_consent(consent_id, purpose)),
            expires_at: Some(in_days(3)),
            reason: "the person needs what the receiving agency provides".into(),
        })
        .await
        .map(|r| r.into_inner().handover_id)
}

/// Waits until `at` has received the offer, then accepts it.
pub(super) async fn accept(at: &Agency, case: &str, handover: &str) -> anyhow::Result<()> {
    wait_pending(at, case, handover).await?;
    at.handover()
        .accept_handover(pb::AcceptHandoverRequest {
            idempotency_key: key(),
            case_id: case.into(),
            handover_id: handover.into(),
        })
        .await
        .with_context(|| format!("AcceptHandover at {}", at.id))?;
    Ok(())
}

/// Waits until `at` has received the offer `handover`.
pub(super) async fn wait_pending(at: &Agency, case: &str, handover: &str) -> anyhow::Result<()> {
    eventually(
        DELIVERY,
        &format!("{} receives offer {handover}", at.id),
        || async { Ok(handover_state(at, case, handover).await?.is_some()) },
    )
    .await
}

/// Waits until `at` shows the offer `handover` in `state`.
pub(super) async fn wait_handover(
    at: &Agency,
    case: &str,
    handover: &str,
    state: pb::HandoverState,
) -> anyhow::Result<()> {
    eventually(
        DELIVERY,
        &format!("{} sees offer {handover} {state:?}", at.id),
        || async { Ok(handover_state(at, case, handover).await? == Some(state)) },
    )
    .await
}

/// Waits until `at` has received the referral `referral`.
pub(super) async fn wait_referral(at: &Agency, case: &str, referral: &str) -> anyhow::Result<()> {
    eventually(
        DELIVERY,
        &format!("{} receives referral {referral}", at.id),
        || async { Ok(referral_state(at, case, referral).await?.is_some()) },
    )
    .await
}

/// Waits until `at` knows `case` and names `who` as custodian.
pub(super) async fn wait_custodian(at: &Agency, case: &str, who: &str) -> anyhow::Result<()> {
    eventually(
        DELIVERY,
        &format!("{} sees {who} as custodian", at.id),
        || async { Ok(custodian(at, case).await?.as_deref() == Some(who)) },
    )
    .await
}

/// Waits until every agency that must acknowledge the withdrawal of
/// `consent`, as `at` (where it was withdrawn) sees it, has done so.
pub(super) async fn wait_acknowledged(
    at: &Agency,
    case: &str,
    consent: &str,
) -> anyhow::Result<()> {
    eventually(
        DELIVERY,
        "every recipient acknowledges the withdrawal",
        || async {
            let s = at
                .consent()
                .get_withdrawal_status(pb::GetWithdrawalStatusRequest {
                    case_id: case.into(),
                    consent_id: consent.into(),
                })
                .await
                .with_context(|| format!("GetWithdrawalStatus at {}", at.id))?
                .into_inner();
            Ok(!s.required_agency_ids.is_empty() && s.outstanding_agency_ids.is_empty())
        },
    )
    .await
}

/// `at` erases the personal data of `case`; waits until `recipient` (which
/// holds a sealed copy) has erased its own and acknowledged, and checks that
/// neither returns the data any more.
pub(super) async fn erase(at: &Agency, case: &str, recipient: &Agency) -> anyhow::Result<()> {
    let personal = |a: &Agency| {
        let mut client = a.case();
        let case = case.to_owned();
        async move {
            client
                .get_personal_data(pb::GetPersonalDataRequest { case_id: case })
                .await
        }
    };
    personal(recipient)
        .await
        .with_context(|| format!("GetPersonalData at {} before erasure", recipient.id))?;
    let r = at
        .case()
        .erase_case(pb::EraseCaseRequest {
            idempotency_key: key(),
            case_id: case.into(),
            ground: pb::ErasureGround::PersonRequest as i32,
            detail: "demo: the person asked for erasure".into(),
        })
        .await
        .context("EraseCase")?
        .into_inner();
    anyhow::ensure!(
        r.notified_agency_ids == [recipient.id.clone()],
        "EraseCase notified {:?}, expected {}",
        r.notified_agency_ids,
        recipient.id
    );
    eventually(
        DELIVERY,
        "the recipient acknowledges the erasure",
        || async {
            let s = at
                .case()
                .get_erasure_status(pb::GetErasureStatusRequest {
                    case_id: case.into(),
                })
                .await
                .with_context(|| format!("GetErasureStatus at {}", at.id))?
                .into_inner();
            Ok(s.outstanding_agency_ids.is_empty() && !s.acknowledged_agency_ids.is_empty())
        },
    )
    .await?;
    for a in [at, recipient] {
        match personal(a).await {
            Err(s) if s.code() == tonic::Code::NotFound => {}
            other => anyhow::bail!(
                "{} still answers GetPersonalData after erasure: {other:?}",
                a.id
            ),
        }
    }
    Ok(())
}
