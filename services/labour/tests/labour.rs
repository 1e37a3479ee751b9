//! LabourService end to end: a real nats-server, real journals, the labour
//! agency served by `waymark_node::run` and called over TCP; overdue
//! monitoring against the real clock, polled, never slept on.

use tonic::Code;
use tonic::transport::Channel;
use waymark_agency::testing::{
    DEADLINE, Federation, Member, assert_invalid, assert_records_once, assert_rule, by_consent,
    in_days, key, legal, ts,
};
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1 as pb;
use waymark_proto::waymark::labour::v1 as labour;
use waymark_proto::waymark::labour::v1::labour_service_client::LabourServiceClient;
use waymark_testkit::wait_for;
use waymark_types::{AgencyKind, Timestamp};

const LABOUR: &str = "labour-e";
const NGO: &str = "ngo-c";

async fn federation() -> Federation {
    Federation::start(&[
        Member::new(LABOUR, AgencyKind::Labour, waymark_labour::add_to),
        Member::common(NGO, AgencyKind::Ngo),
    ])
    .await
}

fn client(f: &Federation) -> LabourServiceClient<Channel> {
    LabourServiceClient::new(f.get(LABOUR).channel.clone())
}

/// A visit's due time.
fn due(v: &labour::OverdueVisit) -> Timestamp {
    timestamp_from_proto(v.due_at.as_ref().expect("a due time")).expect("a valid time")
}

fn schedule(case: &str, visits: Vec<prost_types::Timestamp>) -> labour::ScheduleMonitoringRequest {
    labour::ScheduleMonitoringRequest {
        idempotency_key: key(),
        case_id: case.into(),
        visits,
        send_to: None,
    }
}

fn visit(case: &str, mode: pb::ContactMode) -> labour::RecordMonitoringVisitRequest {
    labour::RecordMonitoringVisitRequest {
        idempotency_key: key(),
        case_id: case.into(),
        mode: mode as i32,
        concerns: false,
        send_to: None,
    }
}

fn measure(case: &str, m: pb::ReintegrationMeasure) -> labour::RecordReintegrationMeasureRequest {
    labour::RecordReintegrationMeasureRequest {
        idempotency_key: key(),
        case_id: case.into(),
        measure: m as i32,
        send_to: None,
    }
}

async fn overdue(c: &LabourServiceClient<Channel>) -> Vec<labour::OverdueVisit> {
    c.clone()
        .list_overdue_monitoring(labour::ListOverdueMonitoringRequest {})
        .await
        .unwrap()
        .into_inner()
        .visits
}

/// Every recording RPC records one event the timeline shows, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_records_once_into_the_timeline() {
    let f = federation().await;
    let l = f.get(LABOUR);
    let case = l.open_case(false).await;
    let c = client(&f);

    let r = labour::AgreeReintegrationPlanRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        review_by: Some(in_days(90)),
        send_to: None,
    };
    assert_records_once(l, &case, "reintegration_plan_agreed", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.agree_reintegration_plan(r).await?.into_inner().recorded) }
    })
    .await;
    for m in [
        pb::ReintegrationMeasure::VocationalTraining,
        pb::ReintegrationMeasure::JobReferral,
        pb::ReintegrationMeasure::SubsidisedEmployment,
        pb::ReintegrationMeasure::MicroCredit,
    ] {
        let r = measure(&case, m);
        assert_records_once(l, &case, "reintegration_measure_recorded", || {
            let (mut c, r) = (c.clone(), r.clone());
            async move {
                Ok(c.record_reintegration_measure(r)
                    .await?
                    .into_inner()
                    .recorded)
            }
        })
        .await;
    }
    let r = schedule(&case, vec![in_days(30), in_days(60)]);
    assert_records_once(l, &case, "monitoring_scheduled", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.schedule_monitoring(r).await?.into_inner().recorded) }
    })
    .await;
    let r = visit(&case, pb::ContactMode::InPerson);
    assert_records_once(l, &case, "monitoring_contact_recorded", || {
        let (mut c, r) = (c.clone(), r.clone());
        async move { Ok(c.record_monitoring_visit(r).await?.into_inner().recorded) }
    })
    .await;
    assert!(overdue(&c).await.is_empty(), "nothing is due for 30 days");
    f.stop().await;
}

/// A planned visit is listed once it is due and unvisited, and leaves the
/// list when a contact reaches the person (here or sent by the NGO) or the
/// case closes; visits not yet due never appear; failed attempts do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_visits_appear_only_when_due_and_unvisited() {
    let f = federation().await;
    let (l, n) = (f.get(LABOUR), f.get(NGO));
    let mut c = client(&f);
    let soon = Timestamp::now().plus_millis(2_000);
    let (a, b, attempt, far, by_ngo) = (
        l.open_case(false).await,
        l.open_case(false).await,
        l.open_case(false).await,
        l.open_case(false).await,
        l.open_case(false).await,
    );
    c.schedule_monitoring(schedule(&a, vec![ts(soon), in_days(30)]))
        .await
        .unwrap();
    c.schedule_monitoring(schedule(&b, vec![ts(soon)]))
        .await
        .unwrap();
    c.record_monitoring_visit(visit(&b, pb::ContactMode::Phone))
        .await
        .unwrap();
    c.schedule_monitoring(schedule(&attempt, vec![ts(soon)]))
        .await
        .unwrap();
    c.record_monitoring_visit(visit(&attempt, pb::ContactMode::AttemptFailed))
        .await
        .unwrap();
    c.schedule_monitoring(schedule(&far, vec![in_days(30)]))
        .await
        .unwrap();
    // The NGO learns of the case from the schedule, and reports a contact
    // back under the person's consent.
    let mut s = schedule(&by_ngo, vec![ts(soon)]);
    s.send_to = Some(n.send_to(
        pb::Purpose::Monitoring,
        Some(legal(pb::LegalBasis::LegalObligation)),
    ));
    let sent = c.schedule_monitoring(s).await.unwrap().into_inner();
    n.wait_for_event(&by_ngo, &sent.recorded.unwrap().event_id)
        .await;
    let consent = n
        .consent_for(
            &by_ngo,
            l,
            &[pb::Purpose::Monitoring],
            &[pb::DataCategory::Assistance],
        )
        .await;
    let req = visit(&by_ngo, pb::ContactMode::InPerson);
    let contact = n
        .recorder()
        .record_case_event(
            "RecordMonitoringContact",
            &key(),
            &req,
            &by_ngo,
            pb::event::Body::MonitoringContactRecorded(pb::MonitoringContactRecorded {
                mode: pb::ContactMode::InPerson as i32,
                concerns: false,
            }),
            Some(&l.send_to(pb::Purpose::Monitoring, Some(by_consent(&consent)))),
        )
        .await
        .unwrap();
    l.wait_for_event(&by_ngo, &contact.event_id).await;

    let now = Timestamp::now();
    assert!(
        overdue(&c).await.iter().all(|v| due(v) <= now),
        "a visit not yet due is never listed"
    );
    wait_for(DEADLINE, "the soon visits fall due", || {
        let c = c.clone();
        let a = a.clone();
        async move { overdue(&c).await.iter().any(|v| v.case_id == a) }
    })
    .await
    .unwrap();
    let list = overdue(&c).await;
    let cases: Vec<&str> = list.iter().map(|v| v.case_id.as_str()).collect();
    assert!(cases.contains(&a.as_str()) && cases.contains(&attempt.as_str()));
    for done in [&b, &far, &by_ngo] {
        assert!(!cases.contains(&done.as_str()), "{list:?}");
    }
    let of_a: Vec<_> = list.iter().filter(|v| v.case_id == a).collect();
    assert_eq!(of_a.len(), 1, "only the visit that is due");
    assert_eq!(due(of_a[0]), soon);
    assert!(list.windows(2).all(|w| due(&w[0]) <= due(&w[1])));

    c.record_monitoring_visit(visit(&a, pb::ContactMode::Video))
        .await
        .unwrap();
    l.case()
        .close_case(pb::CloseCaseRequest {
            idempotency_key: key(),
            case_id: attempt.clone(),
            outcome: pb::CaseOutcome::Reintegrated as i32,
        })
        .await
        .unwrap();
    let after: Vec<String> = overdue(&c).await.into_iter().map(|v| v.case_id).collect();
    assert!(!after.contains(&a), "visited");
    assert!(!after.contains(&attempt), "closed");
    f.stop().await;
}

/// Malformed requests are INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let f = federation().await;
    let l = f.get(LABOUR);
    let case = l.open_case(false).await;
    let mut c = client(&f);

    let e = c
        .schedule_monitoring(schedule(&case, vec![]))
        .await
        .unwrap_err();
    assert_invalid(&e, "visits");
    let e = c
        .schedule_monitoring(schedule(&case, vec![in_days(-3), in_days(30)]))
        .await
        .unwrap_err();
    assert_invalid(&e, "visits[0]");
    let e = c
        .schedule_monitoring(schedule(&case, vec![in_days(60), in_days(30)]))
        .await
        .unwrap_err();
    assert_invalid(&e, "visits[1]");
    let mut m = measure(&case, pb::ReintegrationMeasure::JobReferral);
    m.measure = 0;
    assert_invalid(
        &c.record_reintegration_measure(m).await.unwrap_err(),
        "measure",
    );
    let mut v = visit(&case, pb::ContactMode::Phone);
    v.mode = 9;
    assert_invalid(&c.record_monitoring_visit(v).await.unwrap_err(), "mode");
    let e = c
        .agree_reintegration_plan(labour::AgreeReintegrationPlanRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            review_by: Some(in_days(-1)),
            send_to: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "review_by");
    let e = c
        .record_reintegration_measure(measure(
            "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f",
            pb::ReintegrationMeasure::MicroCredit,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    f.stop().await;
}

/// Without a basis a measure does not leave the ministry; with a legal
/// basis it reaches the NGO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosures_need_a_basis() {
    let f = federation().await;
    let (l, n) = (f.get(LABOUR), f.get(NGO));
    let case = l.open_case(false).await;
    let mut c = client(&f);
    let mut m = measure(&case, pb::ReintegrationMeasure::VocationalTraining);
    m.send_to = Some(n.send_to(pb::Purpose::Reintegration, None));
    let e = c.record_reintegration_measure(m.clone()).await.unwrap_err();
    assert_rule(&e, Code::FailedPrecondition, "disclosure.no_basis");
    assert!(n.timeline(&case).await.is_err(), "nothing reached the NGO");
    m.idempotency_key = key();
    m.send_to = Some(n.send_to(
        pb::Purpose::Reintegration,
        Some(legal(pb::LegalBasis::PublicTask)),
    ));
    let rec = c
        .record_reintegration_measure(m)
        .await
        .unwrap()
        .into_inner()
        .recorded
        .unwrap();
    let at_ngo = n.wait_for_event(&case, &rec.event_id).await;
    assert_eq!(at_ngo.event_kind, "reintegration_measure_recorded");
    f.stop().await;
}
