//! PoliceService end to end: a real nats-server, real journals, the police
//! agency served by `waymark_node::run` and called over TCP.

use tonic::Code;
use waymark_agency::testing::{
    Federation, Member, assert_invalid, assert_records_once, assert_rule, key, legal,
};
use waymark_proto::v1 as pb;
use waymark_proto::waymark::police::v1 as police;
use waymark_proto::waymark::police::v1::police_service_client::PoliceServiceClient;
use waymark_types::AgencyKind;

const POLICE: &str = "police-a";
const SHELTER: &str = "shelter-b";
/// A shelter that (wrongly) serves the police service.
const IMPOSTOR: &str = "shelter-x";

async fn federation() -> Federation {
    Federation::start(&[
        Member::new(POLICE, AgencyKind::Police, waymark_police::add_to),
        Member::common(SHELTER, AgencyKind::Shelter),
        Member::new(IMPOSTOR, AgencyKind::Shelter, waymark_police::add_to),
    ])
    .await
}

fn client(f: &Federation, id: &str) -> PoliceServiceClient<tonic::transport::Channel> {
    PoliceServiceClient::new(f.get(id).channel.clone())
}

fn signal(case: &str) -> police::RecordSignalRequest {
    police::RecordSignalRequest {
        idempotency_key: key(),
        case_id: case.into(),
        channel: pb::IdentificationChannel::LabourInspection as i32,
        indicators: vec![
            "ilo.debt_bondage".into(),
            "ilo.retention_of_documents".into(),
        ],
        forms: vec![pb::ExploitationForm::Labour as i32],
        send_to: None,
    }
}

fn grounds(case: &str) -> police::DecideReasonableGroundsRequest {
    police::DecideReasonableGroundsRequest {
        idempotency_key: key(),
        case_id: case.into(),
        positive: true,
        decided_by_role: "duty inspector".into(),
        send_to: None,
    }
}

fn proceedings(case: &str) -> police::RecordProceedingsStatusRequest {
    police::RecordProceedingsStatusRequest {
        idempotency_key: key(),
        case_id: case.into(),
        cooperation: pb::CooperationStatus::Undecided as i32,
        stage: pb::ProceedingsStage::Investigation as i32,
        witness: false,
        send_to: None,
    }
}

/// Every RPC records one event the case timeline shows; a retry with the
/// same key is a replay that records nothing; the case view reflects the
/// identification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_records_once_into_the_timeline() {
    let f = federation().await;
    let p = f.get(POLICE);
    let case = p.open_case(false).await;
    let c = client(&f, POLICE);

    let r = signal(&case);
    assert_records_once(p, &case, "signal_received", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_signal(r).await?.into_inner().recorded) }
    })
    .await;
    let r = grounds(&case);
    assert_records_once(p, &case, "reasonable_grounds_decided", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.decide_reasonable_grounds(r).await?.into_inner().recorded) }
    })
    .await;
    let r = police::ConcludeIdentificationRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        outcome: pb::IdentificationOutcome::Confirmed as i32,
        send_to: None,
    };
    assert_records_once(p, &case, "identification_concluded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.conclude_identification(r).await?.into_inner().recorded) }
    })
    .await;
    let r = proceedings(&case);
    assert_records_once(p, &case, "proceedings_status_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_proceedings_status(r).await?.into_inner().recorded) }
    })
    .await;

    let view = p
        .case()
        .get_case(pb::GetCaseRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert!(view.identification_concluded);
    assert!(
        view.reflection_ends_at.is_none(),
        "no period recorded here; the protection still applies (policy)"
    );
    f.stop().await;
}

/// Malformed requests are INVALID_ARGUMENT naming the field, before the
/// idempotency key is reserved; unknown cases are NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let f = federation().await;
    let p = f.get(POLICE);
    let case = p.open_case(false).await;
    let mut c = client(&f, POLICE);

    let mut r = signal(&case);
    r.channel = 0;
    r.indicators = vec!["ilo.deception".into(), "Maria from Pleven".into()];
    let e = c.record_signal(r.clone()).await.unwrap_err();
    assert_invalid(&e, "channel");
    assert_invalid(&e, "indicators[1]");
    // The key was not reserved: the corrected request under it records.
    let fixed = police::RecordSignalRequest {
        channel: pb::IdentificationChannel::Police as i32,
        indicators: vec!["ilo.deception".into()],
        ..r
    };
    let rec = c.record_signal(fixed).await.unwrap().into_inner().recorded;
    assert!(!rec.unwrap().replayed);

    let mut r = signal("not-a-case");
    let e = c.record_signal(r.clone()).await.unwrap_err();
    assert_invalid(&e, "case_id");
    r.case_id = "5f0f7d4e-2a51-4b4b-9f0e-8d1f1c2b3a4d".into();
    let e = c.record_signal(r).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let mut r = signal(&case);
    r.idempotency_key.clear();
    assert_invalid(&c.record_signal(r).await.unwrap_err(), "idempotency_key");

    for role in ["", "inspector 4411", "ivan.petrov@mvr.bg"] {
        let mut r = grounds(&case);
        r.decided_by_role = role.into();
        let e = c.decide_reasonable_grounds(r).await.unwrap_err();
        assert_invalid(&e, "decided_by_role");
    }
    let e = c
        .conclude_identification(police::ConcludeIdentificationRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            outcome: 0,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "outcome");
    let mut r = proceedings(&case);
    (r.cooperation, r.stage) = (0, 0);
    assert_invalid(
        &c.record_proceedings_status(r).await.unwrap_err(),
        "cooperation",
    );
    let mut r = proceedings(&case);
    r.stage = 42;
    assert_invalid(&c.record_proceedings_status(r).await.unwrap_err(), "stage");
    // A malformed recipient is named under send_to.
    let mut r = grounds(&case);
    r.send_to = Some(pb::SendTo {
        recipient_id: "Not An Agency".into(),
        ..Default::default()
    });
    assert_invalid(
        &c.decide_reasonable_grounds(r).await.unwrap_err(),
        "send_to.recipient_id",
    );
    f.stop().await;
}

/// A disclosure without a basis is refused before anything is journaled;
/// with a legal basis it reaches the shelter; proceedings data never goes
/// into an assistance disclosure (CETS 197 Art. 12(6)).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosures_need_a_basis_and_proceedings_stay_apart() {
    let f = federation().await;
    let (p, s) = (f.get(POLICE), f.get(SHELTER));
    let case = p.open_case(false).await;
    let mut c = client(&f, POLICE);
    let before = p.timeline(&case).await.unwrap().len();

    let mut r = grounds(&case);
    r.send_to = Some(s.send_to(pb::Purpose::Unspecified, None));
    let e = c.decide_reasonable_grounds(r.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "disclosure.no_basis");
    let mut r2 = proceedings(&case);
    r2.send_to = Some(s.send_to(
        pb::Purpose::Assistance,
        Some(legal(pb::LegalBasis::LegalObligation)),
    ));
    let e = c.record_proceedings_status(r2).await.unwrap_err();
    assert_rule(
        &e,
        Code::FailedPrecondition,
        "treaty.art12_6_assistance_separate_from_proceedings",
    );
    assert_eq!(
        p.timeline(&case).await.unwrap().len(),
        before,
        "refused calls journal nothing"
    );

    // The same key, now with a basis: a different request, so a new key.
    r.idempotency_key = key();
    r.send_to = Some(s.send_to(
        pb::Purpose::Protection,
        Some(legal(pb::LegalBasis::LegalObligation)),
    ));
    let rec = c
        .decide_reasonable_grounds(r)
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    let at_shelter = s.wait_for_event(&case, &rec.event_id).await;
    assert_eq!(at_shelter.event_kind, "reasonable_grounds_decided");
    assert_eq!(at_shelter.sender_id, POLICE);
    assert_eq!(at_shelter.entry_kind, pb::EntryKind::Received as i32);
    f.stop().await;
}

/// The police service served by another kind of agency is PERMISSION_DENIED
/// by the rules (only police originate these events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_police_record_police_events() {
    let f = federation().await;
    let x = f.get(IMPOSTOR);
    let case = x.open_case(false).await;
    let e = client(&f, IMPOSTOR)
        .record_signal(signal(&case))
        .await
        .unwrap_err();
    assert_rule(&e, Code::PermissionDenied, "event.originator_not_allowed");
    f.stop().await;
}
