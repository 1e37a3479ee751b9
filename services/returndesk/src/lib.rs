//! The IOM return desk's own gRPC service,
//! `waymark.returndesk.v1.ReturnDeskService`: assisted voluntary return
//! (BRIEF §2).
//!
//! | RPC | event it records | data category |
//! |---|---|---|
//! | `RequestReturn` | `return_requested` | residence |
//! | `AssessReturnRisk` | `return_risk_assessed` (incl. a child's best interests, CETS 197 Art. 16(7)) | safety |
//! | `IssueTravelDocuments` | `travel_documents_issued` | residence |
//! | `ScheduleReturn` | `return_scheduled` (treaty-guarded) | residence |
//! | `RecordDeparture` | `departure_recorded` | residence |
//! | `ConfirmReception` | `reception_confirmed` (by the origin-country partner) | residence |
//!
//! Only a return desk may originate these events; the bus refuses them from
//! any other kind (`PERMISSION_DENIED`). A process serves this service next
//! to the common ones with [`add_to`].
//!
//! # Treaty guards
//! `ScheduleReturn` and `RecordDeparture` are checked by the policy crate in
//! this agency's view of the case, never here: no return before
//! identification is concluded (Art. 10(2)) or inside the recovery and
//! reflection period (Art. 13) unless the person asked for return, no return
//! of a child without a favourable best-interests assessment (Art. 16(7)),
//! no departure without a scheduled return. The facts come from this
//! journal, so the police must send (or another agency forward) the
//! identification and reasonable-grounds decisions to the return desk
//! first; a refusal says which event is missing (`FAILED_PRECONDITION`,
//! `ErrorInfo.reason` = the rule).
//!
//! # Invariants
//! - Every RPC validates its request first (`INVALID_ARGUMENT` with
//!   `BadRequest` field violations, nothing reserved or journaled), then
//!   records through the agency's [`Recorder`] (idempotency key, policy
//!   check, durable append; with `send_to`, a disclosure that needs a basis).
//! - No personal data: the partner is named by its public organisation id;
//!   travel documents by validity only, never by number.

#![forbid(unsafe_code)]

use tonic::{Request, Response, Status};
use waymark_agency::{ApiError, Recorder};
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::returndesk::v1 as rd;
use waymark_proto::waymark::returndesk::v1::return_desk_service_server::{
    ReturnDeskService, ReturnDeskServiceServer,
};
use waymark_types::Timestamp;

/// Longest partner id, in characters.
pub const MAX_PARTNER_ID_LEN: usize = 64;

/// Adds the `ReturnDeskService` of the agency behind `recorder` to `services`.
pub fn add_to(services: waymark_node::Services, recorder: Recorder) -> waymark_node::Services {
    services.add_service(ReturnDeskServiceServer::new(ReturnDesk(recorder)))
}

/// The service.
struct ReturnDesk(Recorder);

/// A valid timestamp after now; `what` says what it is when it is missing
/// (`None`: the field is optional).
fn future(
    field: &str,
    t: Option<&prost_types::Timestamp>,
    what: Option<&str>,
) -> Result<(), ApiError> {
    let Some(t) = t else {
        return match what {
            Some(w) => Err(ApiError::invalid(field, format!("required: {w}"))),
            None => Ok(()),
        };
    };
    match timestamp_from_proto(t) {
        None => Err(ApiError::invalid(field, "not a valid timestamp")),
        Some(at) if at <= Timestamp::now() => {
            Err(ApiError::invalid(field, "must be in the future"))
        }
        Some(_) => Ok(()),
    }
}

/// A public organisation id such as `iom-md-chisinau` or `md.mlsp.reintegration`:
/// lowercase letters, digits, `.`, `_` and `-`, starting with a letter.
fn is_partner_id(s: &str) -> bool {
    (2..=MAX_PARTNER_ID_LEN).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-'
        })
}

fn check_risk(r: &rd::AssessReturnRiskRequest) -> Result<(), ApiError> {
    ApiError::required_enum::<pb::RiskLevel>("risk", r.risk)?;
    if r.best_interests_ok && r.risk == pb::RiskLevel::High as i32 {
        return Err(ApiError::invalid(
            "best_interests_ok",
            "a return assessed as high risk cannot also be found safe; record the risk that was assessed",
        ));
    }
    Ok(())
}

impl ReturnDesk {
    async fn record(
        &self,
        rpc: &'static str,
        r: &impl prost::Message,
        key: &str,
        case_id: &str,
        body: B,
        send_to: Option<&pb::SendTo>,
    ) -> Result<Option<pb::RecordedEvent>, Status> {
        Ok(Some(
            self.0
                .record_case_event(rpc, key, r, case_id, body, send_to)
                .await?,
        ))
    }
}

#[tonic::async_trait]
impl ReturnDeskService for ReturnDesk {
    async fn request_return(
        &self,
        req: Request<rd::RequestReturnRequest>,
    ) -> Result<Response<rd::RequestReturnResponse>, Status> {
        let r = req.into_inner();
        let body = B::ReturnRequested(pb::ReturnRequested {
            requested_by_person: r.requested_by_person,
        });
        let recorded = self
            .record(
                "RequestReturn",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::RequestReturnResponse { recorded }))
    }

    async fn assess_return_risk(
        &self,
        req: Request<rd::AssessReturnRiskRequest>,
    ) -> Result<Response<rd::AssessReturnRiskResponse>, Status> {
        let r = req.into_inner();
        check_risk(&r)?;
        let body = B::ReturnRiskAssessed(pb::ReturnRiskAssessed {
            risk: r.risk,
            child: r.child,
            best_interests_ok: r.best_interests_ok,
        });
        let recorded = self
            .record(
                "AssessReturnRisk",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::AssessReturnRiskResponse { recorded }))
    }

    async fn issue_travel_documents(
        &self,
        req: Request<rd::IssueTravelDocumentsRequest>,
    ) -> Result<Response<rd::IssueTravelDocumentsResponse>, Status> {
        let r = req.into_inner();
        future("valid_until", r.valid_until.as_ref(), None)?;
        let body = B::TravelDocumentsIssued(pb::TravelDocumentsIssued {
            valid_until: r.valid_until,
        });
        let recorded = self
            .record(
                "IssueTravelDocuments",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::IssueTravelDocumentsResponse { recorded }))
    }

    async fn schedule_return(
        &self,
        req: Request<rd::ScheduleReturnRequest>,
    ) -> Result<Response<rd::ScheduleReturnResponse>, Status> {
        let r = req.into_inner();
        future(
            "departure_at",
            r.departure_at.as_ref(),
            Some("the planned departure"),
        )?;
        let body = B::ReturnScheduled(pb::ReturnScheduled {
            departure_at: r.departure_at,
        });
        let recorded = self
            .record(
                "ScheduleReturn",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::ScheduleReturnResponse { recorded }))
    }

    async fn record_departure(
        &self,
        req: Request<rd::RecordDepartureRequest>,
    ) -> Result<Response<rd::RecordDepartureResponse>, Status> {
        let r = req.into_inner();
        let body = B::DepartureRecorded(pb::DepartureRecorded {
            escorted: r.escorted,
        });
        let recorded = self
            .record(
                "RecordDeparture",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::RecordDepartureResponse { recorded }))
    }

    async fn confirm_reception(
        &self,
        req: Request<rd::ConfirmReceptionRequest>,
    ) -> Result<Response<rd::ConfirmReceptionResponse>, Status> {
        let r = req.into_inner();
        if !is_partner_id(&r.partner_id) {
            return Err(ApiError::invalid(
                "partner_id",
                format!(
                    "required: the receiving partner organisation's public id, e.g. \
                     iom-md-chisinau (lowercase letters, digits, . _ -, at most \
                     {MAX_PARTNER_ID_LEN}); never a person"
                ),
            )
            .into());
        }
        let body = B::ReceptionConfirmed(pb::ReceptionConfirmed {
            partner_id: r.partner_id.clone(),
        });
        let recorded = self
            .record(
                "ConfirmReception",
                &r,
                &r.idempotency_key,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(rd::ConfirmReceptionResponse { recorded }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids_are_organisation_ids() {
        for s in ["iom-md-chisinau", "md.mlsp.reintegration", "ngo_la_strada"] {
            assert!(is_partner_id(s), "{s}");
        }
        for s in ["", "x", "Ion Popescu", "+373 22 000", "-iom", "iom/md"] {
            assert!(!is_partner_id(s), "{s}");
        }
    }

    #[test]
    fn a_high_risk_return_is_not_found_safe() {
        let mut r = rd::AssessReturnRiskRequest {
            risk: pb::RiskLevel::High as i32,
            best_interests_ok: true,
            ..Default::default()
        };
        assert!(check_risk(&r).is_err());
        r.risk = pb::RiskLevel::Low as i32;
        assert!(
            check_risk(&r).is_ok(),
            "adults too: the assessment finds return safe"
        );
        r.risk = 0;
        assert!(check_risk(&r).is_err());
    }
}
