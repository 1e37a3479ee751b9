//! ReturnDeskService end to end: a real nats-server, real journals, the
//! return desk (and a police agency for the identification facts) served by
//! `waymark_node::run` and called over TCP.

use tonic::Code;
use tonic::transport::Channel;
use waymark_agency::testing::{
    Federation, Member, assert_invalid, assert_records_once, assert_rule, in_days, key, legal,
};
use waymark_proto::v1 as pb;
use waymark_proto::waymark::police::v1 as police;
use waymark_proto::waymark::police::v1::police_service_client::PoliceServiceClient;
use waymark_proto::waymark::returndesk::v1 as rd;
use waymark_proto::waymark::returndesk::v1::return_desk_service_client::ReturnDeskServiceClient;
use waymark_types::AgencyKind;

const DESK: &str = "returndesk-d";
const POLICE: &str = "police-a";

async fn federation() -> Federation {
    Federation::start(&[
        Member::new(DESK, AgencyKind::ReturnDesk, waymark_returndesk::add_to),
        Member::new(POLICE, AgencyKind::Police, waymark_police::add_to),
    ])
    .await
}

fn client(f: &Federation) -> ReturnDeskServiceClient<Channel> {
    ReturnDeskServiceClient::new(f.get(DESK).channel.clone())
}

fn request(case: &str, by_person: bool) -> rd::RequestReturnRequest {
    rd::RequestReturnRequest {
        idempotency_key: key(),
        case_id: case.into(),
        requested_by_person: by_person,
        send_to: None,
    }
}

fn risk(case: &str, child: bool, best_interests_ok: bool) -> rd::AssessReturnRiskRequest {
    rd::AssessReturnRiskRequest {
        idempotency_key: key(),
        case_id: case.into(),
        risk: pb::RiskLevel::Low as i32,
        child,
        best_interests_ok,
        send_to: None,
    }
}

fn schedule(case: &str, days: i64) -> rd::ScheduleReturnRequest {
    rd::ScheduleReturnRequest {
        idempotency_key: key(),
        case_id: case.into(),
        departure_at: Some(in_days(days)),
        send_to: None,
    }
}

fn departure(case: &str) -> rd::RecordDepartureRequest {
    rd::RecordDepartureRequest {
        idempotency_key: key(),
        case_id: case.into(),
        escorted: true,
        send_to: None,
    }
}

/// The whole return, each step recorded once into the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_records_once_into_the_timeline() {
    let f = federation().await;
    let d = f.get(DESK);
    let case = d.open_case(false).await;
    let c = client(&f);

    let r = request(&case, true);
    assert_records_once(d, &case, "return_requested", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.request_return(r).await?.into_inner().recorded) }
    })
    .await;
    let r = risk(&case, false, false);
    assert_records_once(d, &case, "return_risk_assessed", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.assess_return_risk(r).await?.into_inner().recorded) }
    })
    .await;
    let r = rd::IssueTravelDocumentsRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        valid_until: Some(in_days(60)),
        send_to: None,
    };
    assert_records_once(d, &case, "travel_documents_issued", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.issue_travel_documents(r).await?.into_inner().recorded) }
    })
    .await;
    let r = schedule(&case, 3);
    assert_records_once(d, &case, "return_scheduled", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.schedule_return(r).await?.into_inner().recorded) }
    })
    .await;
    let r = departure(&case);
    assert_records_once(d, &case, "departure_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_departure(r).await?.into_inner().recorded) }
    })
    .await;
    let r = rd::ConfirmReceptionRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        partner_id: "iom-md-chisinau".into(),
        send_to: None,
    };
    assert_records_once(d, &case, "reception_confirmed", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.confirm_reception(r).await?.into_inner().recorded) }
    })
    .await;
    f.stop().await;
}

/// Malformed requests are INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let f = federation().await;
    let d = f.get(DESK);
    let case = d.open_case(false).await;
    let mut c = client(&f);

    let mut r = risk(&case, false, false);
    r.risk = 0;
    assert_invalid(&c.assess_return_risk(r).await.unwrap_err(), "risk");
    let mut r = risk(&case, false, true);
    r.risk = pb::RiskLevel::High as i32;
    assert_invalid(
        &c.assess_return_risk(r).await.unwrap_err(),
        "best_interests_ok",
    );
    let e = c
        .issue_travel_documents(rd::IssueTravelDocumentsRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            valid_until: Some(in_days(-2)),
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "valid_until");
    let mut r = schedule(&case, 3);
    r.departure_at = None;
    assert_invalid(&c.schedule_return(r).await.unwrap_err(), "departure_at");
    let r = schedule(&case, -1);
    assert_invalid(&c.schedule_return(r).await.unwrap_err(), "departure_at");
    for partner in ["", "Ion Popescu", "+373 22 000 000"] {
        let e = c
            .confirm_reception(rd::ConfirmReceptionRequest {
                idempotency_key: key(),
                case_id: case.clone(),
                partner_id: partner.into(),
                send_to: None,
            })
            .await
            .unwrap_err();
        assert_invalid(&e, "partner_id");
    }
    let e = c.request_return(request("x", true)).await.unwrap_err();
    assert_invalid(&e, "case_id");
    f.stop().await;
}

/// A child's return needs a favourable best-interests assessment even when
/// the child asked for it (CETS 197 Art. 16(7)); a departure needs a
/// scheduled return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_returns_only_in_their_best_interests() {
    let f = federation().await;
    let d = f.get(DESK);
    let case = d.open_case(true).await;
    let mut c = client(&f);

    c.request_return(request(&case, true)).await.unwrap();
    let e = c.record_departure(departure(&case)).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "return.not_scheduled");
    let child = "treaty.art16_7_child_best_interests";
    let e = c.schedule_return(schedule(&case, 3)).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, child);
    c.assess_return_risk(risk(&case, true, false))
        .await
        .unwrap();
    let e = c.schedule_return(schedule(&case, 3)).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, child);
    c.assess_return_risk(risk(&case, true, true)).await.unwrap();
    c.schedule_return(schedule(&case, 3)).await.unwrap();
    c.record_departure(departure(&case)).await.unwrap();
    f.stop().await;
}

/// Identification and reflection facts come from the police's events sent
/// to the return desk: no return before identification is concluded
/// (Art. 10(2)) nor inside the reflection period (Art. 13) unless the
/// person asked; a disclosure without a basis is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_waits_for_identification_and_reflection() {
    let f = federation().await;
    let (d, p) = (f.get(DESK), f.get(POLICE));
    let case = p.open_case(false).await;
    let mut pc = PoliceServiceClient::new(p.channel.clone());
    let to_desk = || {
        Some(d.send_to(
            pb::Purpose::Return,
            Some(legal(pb::LegalBasis::LegalObligation)),
        ))
    };
    let rg = pc
        .decide_reasonable_grounds(police::DecideReasonableGroundsRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            positive: true,
            decided_by_role: "duty inspector".into(),
            send_to: to_desk(),
        })
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    d.wait_for_event(&case, &rg.event_id).await;

    let mut c = client(&f);
    let mut r = request(&case, false);
    r.send_to = Some(p.send_to(pb::Purpose::Return, None));
    let e = c.request_return(r.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "disclosure.no_basis");
    r.idempotency_key = key();
    r.send_to = None;
    c.request_return(r).await.unwrap();
    c.assess_return_risk(risk(&case, false, false))
        .await
        .unwrap();
    let e = c.schedule_return(schedule(&case, 40)).await.unwrap_err();
    assert_rule(
        &e,
        Code::FailedPrecondition,
        "treaty.art10_2_identification_pending",
    );

    let concluded = pc
        .conclude_identification(police::ConcludeIdentificationRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            outcome: pb::IdentificationOutcome::Confirmed as i32,
            send_to: to_desk(),
        })
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    d.wait_for_event(&case, &concluded.event_id).await;
    let e = c.schedule_return(schedule(&case, 3)).await.unwrap_err();
    assert_rule(
        &e,
        Code::FailedPrecondition,
        "treaty.art13_return_in_reflection_period",
    );
    let rec = c
        .schedule_return(schedule(&case, 31))
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    d.wait_for_event(&case, &rec.event_id).await;
    f.stop().await;
}
