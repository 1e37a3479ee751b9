//! The ministry of labour's own gRPC service,
//! `waymark.labour.v1.LabourService`: reintegration and compulsory
//! monitoring (BRIEF §2). Cases are closed with `CaseService.CloseCase`.
//!
//! | RPC | event it records | data category |
//! |---|---|---|
//! | `AgreeReintegrationPlan` | `reintegration_plan_agreed` | reintegration |
//! | `RecordReintegrationMeasure` | `reintegration_measure_recorded` (vocational training, job referral, subsidised employment, micro-credit) | reintegration |
//! | `ScheduleMonitoring` | `monitoring_scheduled` | reintegration |
//! | `RecordMonitoringVisit` | `monitoring_contact_recorded` | assistance |
//! | `ListOverdueMonitoring` | — (query, computed at call time) | — |
//!
//! Only a labour agency may originate reintegration and schedule events
//! (NGOs may also record monitoring contacts); the bus refuses them from any
//! other kind (`PERMISSION_DENIED`). A process serves this service next to
//! the common ones with [`add_to`].
//!
//! # Overdue monitoring
//! A planned visit is overdue once it is due and no monitoring contact
//! fulfils it; the exact matching of contacts to visits is in
//! `monitoring.rs`, the read model over this agency's journal in
//! `overdue.rs`. The list is computed when asked, from the journal, so it
//! needs no timer and survives restarts.
//!
//! # Invariants
//! - Every RPC validates its request first (`INVALID_ARGUMENT` with
//!   `BadRequest` field violations, nothing reserved or journaled), then
//!   records through the agency's [`Recorder`] (idempotency key, policy
//!   check, durable append; with `send_to`, a disclosure that needs a
//!   consent or legal basis, refused `FAILED_PRECONDITION` naming the rule).
//! - A schedule lists 1 to [`MAX_VISITS`] visits, strictly increasing and
//!   in the future.
//! - No personal data: requests carry enums, flags and times only.

#![forbid(unsafe_code)]

mod monitoring;
mod overdue;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_agency::{ApiError, Recorder};
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::labour::v1 as labour;
use waymark_proto::waymark::labour::v1::labour_service_server::{
    LabourService, LabourServiceServer,
};
use waymark_types::Timestamp;

/// Most planned visits in one schedule.
pub const MAX_VISITS: usize = 64;

/// Adds the `LabourService` of the agency behind `recorder` to `services`.
pub fn add_to(services: waymark_node::Services, recorder: Recorder) -> waymark_node::Services {
    services.add_service(LabourServiceServer::new(Labour {
        rec: recorder,
        overdue: Arc::new(overdue::Overdue::default()),
    }))
}

/// The service.
struct Labour {
    rec: Recorder,
    overdue: Arc<overdue::Overdue>,
}

/// Problems of a timestamp that must lie after `after`.
fn after(t: &prost_types::Timestamp, after: Timestamp) -> Result<Timestamp, String> {
    match timestamp_from_proto(t) {
        None => Err("not a valid timestamp".into()),
        Some(at) if at <= after => Err(format!("must be after {after}")),
        Some(at) => Ok(at),
    }
}

fn check_schedule(r: &labour::ScheduleMonitoringRequest, now: Timestamp) -> Result<(), ApiError> {
    if r.visits.is_empty() || r.visits.len() > MAX_VISITS {
        return Err(ApiError::invalid(
            "visits",
            format!("plan 1 to {MAX_VISITS} visits, in order"),
        ));
    }
    let mut bad = Vec::new();
    let mut prev = now;
    for (i, t) in r.visits.iter().enumerate() {
        match after(t, prev) {
            Ok(at) => prev = at,
            Err(why) => bad.push((
                format!("visits[{i}]"),
                if i == 0 {
                    format!("{why} (now): visits are planned in the future")
                } else {
                    format!("{why} (the previous visit): visits are listed in order")
                },
            )),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(bad))
    }
}

#[tonic::async_trait]
impl LabourService for Labour {
    async fn agree_reintegration_plan(
        &self,
        req: Request<labour::AgreeReintegrationPlanRequest>,
    ) -> Result<Response<labour::AgreeReintegrationPlanResponse>, Status> {
        let r = req.into_inner();
        if let Some(t) = &r.review_by {
            after(t, Timestamp::now()).map_err(|why| ApiError::invalid("review_by", why))?;
        }
        let body = B::ReintegrationPlanAgreed(pb::ReintegrationPlanAgreed {
            review_by: r.review_by,
        });
        let recorded = self
            .rec
            .record_case_event(
                "AgreeReintegrationPlan",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(labour::AgreeReintegrationPlanResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_reintegration_measure(
        &self,
        req: Request<labour::RecordReintegrationMeasureRequest>,
    ) -> Result<Response<labour::RecordReintegrationMeasureResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::ReintegrationMeasure>("measure", r.measure)?;
        let body = B::ReintegrationMeasureRecorded(pb::ReintegrationMeasureRecorded {
            measure: r.measure,
        });
        let recorded = self
            .rec
            .record_case_event(
                "RecordReintegrationMeasure",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(labour::RecordReintegrationMeasureResponse {
            recorded: Some(recorded),
        }))
    }

    async fn schedule_monitoring(
        &self,
        req: Request<labour::ScheduleMonitoringRequest>,
    ) -> Result<Response<labour::ScheduleMonitoringResponse>, Status> {
        let r = req.into_inner();
        check_schedule(&r, Timestamp::now())?;
        let body = B::MonitoringScheduled(pb::MonitoringScheduled {
            visits: r.visits.clone(),
        });
        let recorded = self
            .rec
            .record_case_event(
                "ScheduleMonitoring",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(labour::ScheduleMonitoringResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_monitoring_visit(
        &self,
        req: Request<labour::RecordMonitoringVisitRequest>,
    ) -> Result<Response<labour::RecordMonitoringVisitResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::ContactMode>("mode", r.mode)?;
        let body = B::MonitoringContactRecorded(pb::MonitoringContactRecorded {
            mode: r.mode,
            concerns: r.concerns,
        });
        let recorded = self
            .rec
            .record_case_event(
                "RecordMonitoringVisit",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(labour::RecordMonitoringVisitResponse {
            recorded: Some(recorded),
        }))
    }

    async fn list_overdue_monitoring(
        &self,
        _: Request<labour::ListOverdueMonitoringRequest>,
    ) -> Result<Response<labour::ListOverdueMonitoringResponse>, Status> {
        let visits = self.overdue.list(&self.rec, Timestamp::now()).await?;
        Ok(Response::new(labour::ListOverdueMonitoringResponse {
            visits,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_policy::wire::timestamp_to_proto;

    fn req(days: &[i64], now: Timestamp) -> labour::ScheduleMonitoringRequest {
        labour::ScheduleMonitoringRequest {
            visits: days
                .iter()
                .map(|d| timestamp_to_proto(now.plus_days(*d)))
                .collect(),
            ..Default::default()
        }
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid(v) => v.into_iter().map(|(f, _)| f).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schedules_are_future_and_in_order() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        assert!(check_schedule(&req(&[30, 60, 90], now), now).is_ok());
        assert_eq!(
            fields(check_schedule(&req(&[], now), now).unwrap_err()),
            ["visits"]
        );
        assert_eq!(
            fields(check_schedule(&req(&[-1, 30], now), now).unwrap_err()),
            ["visits[0]"]
        );
        assert_eq!(
            fields(check_schedule(&req(&[30, 30, 20, 40], now), now).unwrap_err()),
            ["visits[1]", "visits[2]"]
        );
        let many: Vec<i64> = (1..=65).collect();
        assert!(check_schedule(&req(&many, now), now).is_err());
    }
}
