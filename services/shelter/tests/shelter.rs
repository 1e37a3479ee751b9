//! ShelterService end to end: a real nats-server, real journals, the shelter
//! served by `waymark_node::run` and called over TCP.

use tonic::Code;
use tonic::transport::Channel;
use waymark_agency::testing::{
    Federation, Member, assert_invalid, assert_records_once, assert_rule, in_days, key, legal,
};
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1 as pb;
use waymark_proto::waymark::shelter::v1 as shelter;
use waymark_proto::waymark::shelter::v1::shelter_service_client::ShelterServiceClient;
use waymark_types::{AgencyKind, Timestamp};

const SHELTER: &str = "shelter-b";
const POLICE: &str = "police-a";

async fn federation() -> Federation {
    Federation::start(&[
        Member::new(SHELTER, AgencyKind::Shelter, waymark_shelter::add_to),
        Member::common(POLICE, AgencyKind::Police),
    ])
    .await
}

fn client(f: &Federation) -> ShelterServiceClient<Channel> {
    ShelterServiceClient::new(f.get(SHELTER).channel.clone())
}

fn capacity(total: u32, free: u32, children: bool) -> shelter::UpdateCapacityRequest {
    shelter::UpdateCapacityRequest {
        idempotency_key: key(),
        total_places: total,
        free_places: free,
        accepts_children: children,
    }
}

async fn get_capacity(c: &mut ShelterServiceClient<Channel>) -> shelter::GetCapacityResponse {
    c.get_capacity(shelter::GetCapacityRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Every case RPC records one event the timeline shows, once; the default
/// reflection period is exactly the rule set's minimum (30 days).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_records_once_into_the_timeline() {
    let f = federation().await;
    let s = f.get(SHELTER);
    let case = s.open_case(false).await;
    let c = client(&f);

    let r = shelter::AdmitPersonRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        planned_days: 90,
        send_to: None,
    };
    assert_records_once(s, &case, "admitted", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.admit_person(r).await?.into_inner().recorded) }
    })
    .await;
    let r = shelter::RecordServiceDeliveredRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        service: pb::ServiceType::Psychological as i32,
        send_to: None,
    };
    assert_records_once(s, &case, "service_delivered", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_service_delivered(r).await?.into_inner().recorded) }
    })
    .await;
    let r = shelter::AgreeSafetyPlanRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        review_by: Some(in_days(14)),
        signed_by_person: true,
        send_to: None,
    };
    assert_records_once(s, &case, "safety_plan_agreed", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.agree_safety_plan(r).await?.into_inner().recorded) }
    })
    .await;
    let before = Timestamp::now();
    let r = shelter::StartReflectionPeriodRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        starts_at: None,
        ends_at: None,
        send_to: None,
    };
    assert_records_once(s, &case, "reflection_period_started", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.start_reflection_period(r).await?.into_inner().recorded) }
    })
    .await;
    let after = Timestamp::now();
    let view = s
        .case()
        .get_case(pb::GetCaseRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let ends = timestamp_from_proto(&view.reflection_ends_at.expect("a reflection period"))
        .expect("a valid time");
    assert!(
        before.plus_days(30) <= ends && ends <= after.plus_days(30),
        "default end is start + 30 days: {ends:?}"
    );
    let r = shelter::DischargePersonRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        reason: pb::DischargeReason::MovedOn as i32,
        send_to: None,
    };
    assert_records_once(s, &case, "discharged", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.discharge_person(r).await?.into_inner().recorded) }
    })
    .await;
    f.stop().await;
}

/// GetCapacity answers the last update recorded here; a replayed update
/// changes nothing; free places above the total are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_answers_the_latest_update() {
    let f = federation().await;
    let s = f.get(SHELTER);
    let mut c = client(&f);
    let none = get_capacity(&mut c).await;
    assert_eq!(none, shelter::GetCapacityResponse::default());

    let first = capacity(12, 5, true);
    let rec = c
        .update_capacity(first.clone())
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    assert!(!rec.replayed);
    assert!(rec.journal_seq <= s.journal_size());
    let got = get_capacity(&mut c).await;
    assert_eq!(
        (got.total_places, got.free_places, got.accepts_children),
        (12, 5, true)
    );
    assert!(got.updated_at.is_some());

    c.update_capacity(capacity(12, 3, false)).await.unwrap();
    let again = c
        .update_capacity(first)
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    assert!(again.replayed, "a retry is a replay");
    assert_eq!(again.event_id, rec.event_id);
    let got = get_capacity(&mut c).await;
    assert_eq!(
        (got.total_places, got.free_places, got.accepts_children),
        (12, 3, false),
        "the replay did not bring the old capacity back"
    );

    let e = c.update_capacity(capacity(4, 5, false)).await.unwrap_err();
    assert_invalid(&e, "free_places");
    assert_eq!(get_capacity(&mut c).await.free_places, 3);
    f.stop().await;
}

/// Malformed requests are INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let f = federation().await;
    let s = f.get(SHELTER);
    let case = s.open_case(false).await;
    let mut c = client(&f);

    let e = c
        .admit_person(shelter::AdmitPersonRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            planned_days: 100_000,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "planned_days");
    let e = c
        .admit_person(shelter::AdmitPersonRequest {
            idempotency_key: key(),
            case_id: "12".into(),
            planned_days: 10,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "case_id");
    let e = c
        .discharge_person(shelter::DischargePersonRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            reason: 0,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "reason");
    let e = c
        .record_service_delivered(shelter::RecordServiceDeliveredRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            service: 777,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "service");
    let e = c
        .agree_safety_plan(shelter::AgreeSafetyPlanRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            review_by: Some(in_days(-1)),
            signed_by_person: false,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "review_by");
    let e = c
        .start_reflection_period(shelter::StartReflectionPeriodRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            starts_at: Some(in_days(1)),
            ends_at: Some(in_days(0)),
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "ends_at");
    f.stop().await;
}

/// The rules answer from the bus: a period shorter than 30 days (Art. 13)
/// and a disclosure without a basis are FAILED_PRECONDITION naming the rule;
/// with a legal basis the admission reaches the police.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_refuse_short_periods_and_baseless_disclosures() {
    let f = federation().await;
    let (s, p) = (f.get(SHELTER), f.get(POLICE));
    let case = s.open_case(false).await;
    let mut c = client(&f);

    let e = c
        .start_reflection_period(shelter::StartReflectionPeriodRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            starts_at: Some(in_days(0)),
            ends_at: Some(in_days(10)),
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_rule(
        &e,
        Code::FailedPrecondition,
        "treaty.art13_reflection_too_short",
    );

    let mut admit = shelter::AdmitPersonRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        planned_days: 30,
        send_to: Some(p.send_to(pb::Purpose::Protection, None)),
    };
    let e = c.admit_person(admit.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "disclosure.no_basis");
    assert!(
        p.timeline(&case).await.is_err(),
        "nothing reached the police"
    );

    admit.idempotency_key = key();
    admit.send_to = Some(p.send_to(
        pb::Purpose::Protection,
        Some(legal(pb::LegalBasis::LegalObligation)),
    ));
    let rec = c
        .admit_person(admit)
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    let at_police = p.wait_for_event(&case, &rec.event_id).await;
    assert_eq!(at_police.event_kind, "admitted");
    assert_eq!(at_police.entry_kind, pb::EntryKind::Received as i32);
    f.stop().await;
}
