//! The shelter agency's own gRPC service, `waymark.shelter.v1.ShelterService`:
//! accommodation and assistance in the referral mechanism (BRIEF §2).
//!
//! | RPC | event it records | data category |
//! |---|---|---|
//! | `UpdateCapacity` | `capacity_updated` (agency-level, no case) | — |
//! | `GetCapacity` | — (query: the last capacity this shelter recorded) | — |
//! | `AdmitPerson` | `admitted` | assistance |
//! | `DischargePerson` | `discharged` | assistance |
//! | `RecordServiceDelivered` | `service_delivered` | assistance |
//! | `AgreeSafetyPlan` | `safety_plan_agreed` | safety |
//! | `StartReflectionPeriod` | `reflection_period_started` (CETS 197 Art. 13) | case core |
//!
//! Only a shelter may originate these events (NGOs may also record
//! `service_delivered`); the bus refuses them from any other kind
//! (`PERMISSION_DENIED`). A process serves this service next to the common
//! ones with [`add_to`].
//!
//! # Invariants
//! - Every RPC validates its request first (`INVALID_ARGUMENT` with
//!   `BadRequest` field violations, nothing reserved or journaled), then
//!   records through the agency's [`Recorder`] (idempotency key, policy
//!   check, durable append; with `send_to`, a disclosure that needs a basis).
//! - Rules live in the policy crate: a reflection period shorter than the
//!   rule set's minimum, or a discharge "for not cooperating with police",
//!   is refused there (`FAILED_PRECONDITION` naming the treaty rule).
//! - `StartReflectionPeriod` without `ends_at` asks for exactly the minimum
//!   protection: the later of start + minimum and a positive
//!   reasonable-grounds decision (as this journal knows it) + minimum.
//! - Capacity is advisory: admissions and discharges do not change it; the
//!   shelter publishes its places with `UpdateCapacity`. `GetCapacity` is
//!   derived from this agency's own journal (see `capacity.rs`).
//! - No personal data: requests carry enums, counts, flags and times only.

#![forbid(unsafe_code)]

mod capacity;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_agency::{ApiError, Recorder};
use waymark_policy::wire::{timestamp_from_proto, timestamp_to_proto};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::shelter::v1 as shelter;
use waymark_proto::waymark::shelter::v1::shelter_service_server::{
    ShelterService, ShelterServiceServer,
};
use waymark_types::{CaseId, Timestamp};

/// Longest accepted planned stay, in days.
pub const MAX_PLANNED_DAYS: u32 = 3650;

/// Adds the `ShelterService` of the agency behind `recorder` to `services`.
pub fn add_to(services: waymark_node::Services, recorder: Recorder) -> waymark_node::Services {
    services.add_service(ShelterServiceServer::new(Shelter {
        rec: recorder,
        capacity: Arc::new(capacity::Capacity::default()),
    }))
}

/// The service.
struct Shelter {
    rec: Recorder,
    capacity: Arc<capacity::Capacity>,
}

type Bad = Vec<(String, String)>;

fn done(v: Bad) -> Result<(), ApiError> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(v))
    }
}

/// A valid timestamp, if set; `future` also requires it after now.
fn time(
    v: &mut Bad,
    field: &str,
    t: Option<&prost_types::Timestamp>,
    future: bool,
) -> Option<Timestamp> {
    let t = t?;
    match timestamp_from_proto(t) {
        None => {
            v.push((field.into(), "not a valid timestamp".into()));
            None
        }
        Some(at) if future && at <= Timestamp::now() => {
            v.push((field.into(), "must be in the future".into()));
            None
        }
        Some(at) => Some(at),
    }
}

fn case_id(s: &str) -> Result<CaseId, ApiError> {
    CaseId::parse(s).map_err(|_| {
        ApiError::invalid(
            "case_id",
            "must be a case id: a lowercase hyphenated UUID as returned by OpenCase",
        )
    })
}

impl Shelter {
    async fn update_capacity(
        &self,
        r: shelter::UpdateCapacityRequest,
    ) -> Result<pb::RecordedEvent, ApiError> {
        if r.free_places > r.total_places {
            return Err(ApiError::invalid(
                "free_places",
                format!("at most total_places ({})", r.total_places),
            ));
        }
        let body = B::CapacityUpdated(pb::CapacityUpdated {
            total_places: r.total_places,
            free_places: r.free_places,
            accepts_children: r.accepts_children,
        });
        let rec = self.rec.clone();
        let done = self
            .rec
            .record(
                "UpdateCapacity",
                &r.idempotency_key,
                &r,
                move |id| Ok(rec.agency_event(id, body)),
                &|p: &str| p.strip_prefix("body.capacity_updated.").map(str::to_owned),
            )
            .await?;
        Ok(done.recorded)
    }

    /// Fills in the defaults of the period and checks its shape; whether it
    /// is long enough is the policy's rule (Art. 13).
    async fn reflection(
        &self,
        r: &shelter::StartReflectionPeriodRequest,
    ) -> Result<pb::ReflectionPeriodStarted, ApiError> {
        let mut v = Bad::new();
        let starts = time(&mut v, "starts_at", r.starts_at.as_ref(), false);
        let ends = time(&mut v, "ends_at", r.ends_at.as_ref(), false);
        done(v)?;
        let starts = starts.unwrap_or_else(Timestamp::now);
        let ends = match ends {
            Some(e) if e <= starts => {
                return Err(ApiError::invalid("ends_at", "must be after starts_at"));
            }
            Some(e) => e,
            None => {
                let rules = self.rec.rule_set()?;
                let state = self.rec.case_state(case_id(&r.case_id)?).await?;
                let from_grounds = state
                    .pathway()
                    .reasonable_grounds
                    .filter(|d| d.positive)
                    .map(|d| rules.reflection_end_from(d.at));
                rules
                    .reflection_end_from(starts)
                    .max(from_grounds.unwrap_or(starts))
            }
        };
        Ok(pb::ReflectionPeriodStarted {
            starts_at: Some(timestamp_to_proto(starts)),
            ends_at: Some(timestamp_to_proto(ends)),
        })
    }
}

#[tonic::async_trait]
impl ShelterService for Shelter {
    async fn update_capacity(
        &self,
        req: Request<shelter::UpdateCapacityRequest>,
    ) -> Result<Response<shelter::UpdateCapacityResponse>, Status> {
        let recorded = Shelter::update_capacity(self, req.into_inner()).await?;
        Ok(Response::new(shelter::UpdateCapacityResponse {
            recorded: Some(recorded),
        }))
    }

    async fn get_capacity(
        &self,
        _: Request<shelter::GetCapacityRequest>,
    ) -> Result<Response<shelter::GetCapacityResponse>, Status> {
        Ok(Response::new(self.capacity.get(&self.rec).await?))
    }

    async fn admit_person(
        &self,
        req: Request<shelter::AdmitPersonRequest>,
    ) -> Result<Response<shelter::AdmitPersonResponse>, Status> {
        let r = req.into_inner();
        if r.planned_days > MAX_PLANNED_DAYS {
            return Err(ApiError::invalid(
                "planned_days",
                format!("at most {MAX_PLANNED_DAYS} (0 for an open-ended stay)"),
            )
            .into());
        }
        let body = B::Admitted(pb::Admitted {
            planned_days: r.planned_days,
        });
        let recorded = self
            .rec
            .record_case_event(
                "AdmitPerson",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(shelter::AdmitPersonResponse {
            recorded: Some(recorded),
        }))
    }

    async fn discharge_person(
        &self,
        req: Request<shelter::DischargePersonRequest>,
    ) -> Result<Response<shelter::DischargePersonResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::DischargeReason>("reason", r.reason)?;
        let body = B::Discharged(pb::Discharged { reason: r.reason });
        let recorded = self
            .rec
            .record_case_event(
                "DischargePerson",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(shelter::DischargePersonResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_service_delivered(
        &self,
        req: Request<shelter::RecordServiceDeliveredRequest>,
    ) -> Result<Response<shelter::RecordServiceDeliveredResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::ServiceType>("service", r.service)?;
        let body = B::ServiceDelivered(pb::ServiceDelivered { service: r.service });
        let recorded = self
            .rec
            .record_case_event(
                "RecordServiceDelivered",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(shelter::RecordServiceDeliveredResponse {
            recorded: Some(recorded),
        }))
    }

    async fn agree_safety_plan(
        &self,
        req: Request<shelter::AgreeSafetyPlanRequest>,
    ) -> Result<Response<shelter::AgreeSafetyPlanResponse>, Status> {
        let r = req.into_inner();
        let mut v = Bad::new();
        time(&mut v, "review_by", r.review_by.as_ref(), true);
        done(v)?;
        let body = B::SafetyPlanAgreed(pb::SafetyPlanAgreed {
            review_by: r.review_by,
            signed_by_person: r.signed_by_person,
        });
        let recorded = self
            .rec
            .record_case_event(
                "AgreeSafetyPlan",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(shelter::AgreeSafetyPlanResponse {
            recorded: Some(recorded),
        }))
    }

    async fn start_reflection_period(
        &self,
        req: Request<shelter::StartReflectionPeriodRequest>,
    ) -> Result<Response<shelter::StartReflectionPeriodResponse>, Status> {
        let r = req.into_inner();
        let body = B::ReflectionPeriodStarted(self.reflection(&r).await?);
        let recorded = self
            .rec
            .record_case_event(
                "StartReflectionPeriod",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(shelter::StartReflectionPeriodResponse {
            recorded: Some(recorded),
        }))
    }
}
