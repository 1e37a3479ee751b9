//! NgoService end to end: a real nats-server, real journals, the NGO served
//! by `waymark_node::run` and called over TCP.

use tonic::Code;
use tonic::transport::Channel;
use waymark_agency::testing::{
    Federation, Member, TestAgency, assert_invalid, assert_records_once, assert_rule, by_consent,
    key,
};
use waymark_proto::v1 as pb;
use waymark_proto::waymark::ngo::v1 as ngo;
use waymark_proto::waymark::ngo::v1::ngo_service_client::NgoServiceClient;
use waymark_types::AgencyKind;

const NGO: &str = "ngo-c";
const SHELTER: &str = "shelter-b";

async fn federation() -> Federation {
    Federation::start(&[
        Member::new(NGO, AgencyKind::Ngo, waymark_ngo::add_to),
        Member::common(SHELTER, AgencyKind::Shelter),
    ])
    .await
}

fn client(f: &Federation) -> NgoServiceClient<Channel> {
    NgoServiceClient::new(f.get(NGO).channel.clone())
}

/// A hotline case opened anonymously: no personal data at all.
async fn anonymous_case(n: &TestAgency) -> String {
    n.case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: pb::IdentificationChannel::Hotline as i32,
            anonymous: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case_id
}

fn assistance(case: &str) -> ngo::RecordAssistanceRequest {
    ngo::RecordAssistanceRequest {
        idempotency_key: key(),
        case_id: case.into(),
        service: pb::ServiceType::Legal as i32,
        send_to: None,
    }
}

/// Every RPC records one event the timeline shows, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_records_once_into_the_timeline() {
    let f = federation().await;
    let n = f.get(NGO);
    let case = anonymous_case(n).await;
    let c = client(&f);

    let r = ngo::RecordHotlineIntakeRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        anonymous: true,
        third_party: true,
        send_to: None,
    };
    assert_records_once(n, &case, "hotline_intake_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_hotline_intake(r).await?.into_inner().recorded) }
    })
    .await;
    let r = ngo::RecordOutreachContactRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        setting: "workplace".into(),
        send_to: None,
    };
    assert_records_once(n, &case, "outreach_contact_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_outreach_contact(r).await?.into_inner().recorded) }
    })
    .await;
    let r = assistance(&case);
    assert_records_once(n, &case, "service_delivered", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_assistance(r).await?.into_inner().recorded) }
    })
    .await;
    let r = ngo::RecordMonitoringContactRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        mode: pb::ContactMode::Phone as i32,
        concerns: false,
        send_to: None,
    };
    assert_records_once(n, &case, "monitoring_contact_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_monitoring_contact(r).await?.into_inner().recorded) }
    })
    .await;
    // The anonymous case holds no personal data.
    let e = n
        .case()
        .get_personal_data(pb::GetPersonalDataRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    f.stop().await;
}

/// Malformed requests are INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let f = federation().await;
    let (n, s) = (f.get(NGO), f.get(SHELTER));
    let case = anonymous_case(n).await;
    let mut c = client(&f);

    for setting in ["", "12 Vitosha Blvd, Sofia", "Street"] {
        let e = c
            .record_outreach_contact(ngo::RecordOutreachContactRequest {
                idempotency_key: key(),
                case_id: case.clone(),
                setting: setting.into(),
                send_to: None,
            })
            .await
            .unwrap_err();
        assert_invalid(&e, "setting");
    }
    let mut personal = s.send_to(pb::Purpose::Assistance, None);
    personal.personal = Some(pb::PersonalData {
        phone: "+359 888 000 000".into(),
        ..Default::default()
    });
    let e = c
        .record_hotline_intake(ngo::RecordHotlineIntakeRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            anonymous: true,
            third_party: false,
            send_to: Some(personal),
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "send_to.personal");
    let mut r = assistance(&case);
    r.service = 0;
    assert_invalid(&c.record_assistance(r).await.unwrap_err(), "service");
    let e = c
        .record_monitoring_contact(ngo::RecordMonitoringContactRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            mode: 0,
            concerns: true,
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "mode");
    let mut r = assistance("");
    assert_invalid(
        &c.record_assistance(r.clone()).await.unwrap_err(),
        "case_id",
    );
    r.case_id = case.clone();
    r.idempotency_key = "k".repeat(129);
    assert_invalid(
        &c.record_assistance(r).await.unwrap_err(),
        "idempotency_key",
    );
    f.stop().await;
}

/// Without a basis the assistance record does not leave the NGO; with the
/// person's consent, forwarded first, it reaches the shelter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosures_need_a_basis() {
    let f = federation().await;
    let (n, s) = (f.get(NGO), f.get(SHELTER));
    let case = n.open_case(false).await;
    let mut c = client(&f);

    let mut r = assistance(&case);
    r.send_to = Some(s.send_to(pb::Purpose::Assistance, None));
    let e = c.record_assistance(r.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "disclosure.no_basis");
    // A consent for another purpose does not cover it.
    let consent = n
        .consent_for(
            &case,
            s,
            &[pb::Purpose::Accommodation],
            &[pb::DataCategory::Assistance],
        )
        .await;
    r.idempotency_key = key();
    r.send_to = Some(s.send_to(pb::Purpose::Assistance, Some(by_consent(&consent))));
    let e = c.record_assistance(r.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "consent.purpose_out_of_scope");
    // The forwarded consent may have arrived; no assistance record did.
    let leaked = s
        .timeline(&case)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.event_kind == "service_delivered")
        .count();
    assert_eq!(leaked, 0);

    let consent = n
        .consent_for(
            &case,
            s,
            &[pb::Purpose::Assistance],
            &[pb::DataCategory::Assistance],
        )
        .await;
    r.idempotency_key = key();
    r.send_to = Some(s.send_to(pb::Purpose::Assistance, Some(by_consent(&consent))));
    let rec = c
        .record_assistance(r)
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    let at_shelter = s.wait_for_event(&case, &rec.event_id).await;
    assert_eq!(at_shelter.event_kind, "service_delivered");
    assert_eq!(at_shelter.sender_id, NGO);
    f.stop().await;
}
