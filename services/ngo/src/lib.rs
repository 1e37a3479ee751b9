//! The NGO agency's own gRPC service, `waymark.ngo.v1.NgoService`: outreach
//! and hotline identification, assistance and monitoring after assistance
//! (BRIEF §2).
//!
//! | RPC | event it records | data category |
//! |---|---|---|
//! | `RecordOutreachContact` | `outreach_contact_recorded` | assistance |
//! | `RecordHotlineIntake` | `hotline_intake_recorded` | assistance |
//! | `RecordAssistance` | `service_delivered` | assistance |
//! | `RecordMonitoringContact` | `monitoring_contact_recorded` | assistance |
//!
//! Only an NGO may originate outreach and hotline events; shelters may also
//! record `service_delivered` and ministries of labour
//! `monitoring_contact_recorded`. The bus refuses them from any other kind
//! (`PERMISSION_DENIED`). A process serves this service next to the common
//! ones with [`add_to`].
//!
//! # Anonymous intake
//! A hotline caller may stay anonymous. The back office opens the case with
//! `CaseService.OpenCase{anonymous: true, channel: HOTLINE}` (which refuses
//! personal data) and records the call here on that case with
//! `anonymous: true`; such an intake may not carry personal data for a
//! recipient either (`send_to.personal` is `INVALID_ARGUMENT`).
//!
//! # Invariants
//! - Every RPC validates its request first (`INVALID_ARGUMENT` with
//!   `BadRequest` field violations, nothing reserved or journaled), then
//!   records through the agency's [`Recorder`] (idempotency key, policy
//!   check, durable append; with `send_to`, a disclosure that needs a
//!   consent or legal basis, refused `FAILED_PRECONDITION` naming the rule).
//! - No personal data: the outreach setting is a kind of place from a
//!   closed alphabet (`street`, `workplace`, `online`), so no address,
//!   number or name fits; everything else is enums and flags.

#![forbid(unsafe_code)]

use tonic::{Request, Response, Status};
use waymark_agency::{ApiError, Recorder};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::ngo::v1 as ngo;
use waymark_proto::waymark::ngo::v1::ngo_service_server::{NgoService, NgoServiceServer};

/// Longest outreach setting, in characters.
pub const MAX_SETTING_LEN: usize = 32;

/// Adds the `NgoService` of the agency behind `recorder` to `services`.
pub fn add_to(services: waymark_node::Services, recorder: Recorder) -> waymark_node::Services {
    services.add_service(NgoServiceServer::new(Ngo(recorder)))
}

/// The service.
struct Ngo(Recorder);

/// A kind of place: lowercase letters, `_` and `-`, starting with a letter.
fn is_setting(s: &str) -> bool {
    s.len() <= MAX_SETTING_LEN
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
}

fn check_intake(r: &ngo::RecordHotlineIntakeRequest) -> Result<(), ApiError> {
    let personal = r
        .send_to
        .as_ref()
        .and_then(|s| s.personal.as_ref())
        .is_some_and(|p| *p != pb::PersonalData::default());
    if r.anonymous && personal {
        return Err(ApiError::invalid(
            "send_to.personal",
            "must be empty for an anonymous intake (anonymous = true)",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl NgoService for Ngo {
    async fn record_outreach_contact(
        &self,
        req: Request<ngo::RecordOutreachContactRequest>,
    ) -> Result<Response<ngo::RecordOutreachContactResponse>, Status> {
        let r = req.into_inner();
        if !is_setting(&r.setting) {
            return Err(ApiError::invalid(
                "setting",
                format!(
                    "required: the kind of place, e.g. street, workplace or online (lowercase \
                     letters, _ and -, at most {MAX_SETTING_LEN}); never an address"
                ),
            )
            .into());
        }
        let body = B::OutreachContactRecorded(pb::OutreachContactRecorded {
            setting: r.setting.clone(),
        });
        let recorded = self
            .0
            .record_case_event(
                "RecordOutreachContact",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(ngo::RecordOutreachContactResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_hotline_intake(
        &self,
        req: Request<ngo::RecordHotlineIntakeRequest>,
    ) -> Result<Response<ngo::RecordHotlineIntakeResponse>, Status> {
        let r = req.into_inner();
        check_intake(&r)?;
        let body = B::HotlineIntakeRecorded(pb::HotlineIntakeRecorded {
            anonymous: r.anonymous,
            third_party: r.third_party,
        });
        let recorded = self
            .0
            .record_case_event(
                "RecordHotlineIntake",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(ngo::RecordHotlineIntakeResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_assistance(
        &self,
        req: Request<ngo::RecordAssistanceRequest>,
    ) -> Result<Response<ngo::RecordAssistanceResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::ServiceType>("service", r.service)?;
        let body = B::ServiceDelivered(pb::ServiceDelivered { service: r.service });
        let recorded = self
            .0
            .record_case_event(
                "RecordAssistance",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(ngo::RecordAssistanceResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_monitoring_contact(
        &self,
        req: Request<ngo::RecordMonitoringContactRequest>,
    ) -> Result<Response<ngo::RecordMonitoringContactResponse>, Status> {
        let r = req.into_inner();
        ApiError::required_enum::<pb::ContactMode>("mode", r.mode)?;
        let body = B::MonitoringContactRecorded(pb::MonitoringContactRecorded {
            mode: r.mode,
            concerns: r.concerns,
        });
        let recorded = self
            .0
            .record_case_event(
                "RecordMonitoringContact",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(ngo::RecordMonitoringContactResponse {
            recorded: Some(recorded),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_kinds_of_place_not_addresses() {
        for s in ["street", "workplace", "online", "bus_station", "agri-farm"] {
            assert!(is_setting(s), "{s}");
        }
        for s in [
            "",
            "12 Vitosha Blvd",
            "Street",
            "flat 4",
            "ul.rakovski",
            "-x",
        ] {
            assert!(!is_setting(s), "{s}");
        }
    }
}
