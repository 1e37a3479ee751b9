//! The police agency's own gRPC service, `waymark.police.v1.PoliceService`:
//! the identification steps of the referral mechanism (BRIEF §2).
//!
//! | RPC | event it records | data category |
//! |---|---|---|
//! | `RecordSignal` | `signal_received` | case core |
//! | `DecideReasonableGrounds` | `reasonable_grounds_decided` (CETS 197 Art. 10(2)) | case core |
//! | `ConcludeIdentification` | `identification_concluded` | case core |
//! | `RecordProceedingsStatus` | `proceedings_status_recorded` | **proceedings** |
//!
//! Only a police agency may originate these events; the bus refuses them
//! from any other kind (`PERMISSION_DENIED`, `event.originator_not_allowed`).
//! A process serves this service next to the common ones with [`add_to`].
//!
//! # Invariants
//! - Every RPC validates its request first (`INVALID_ARGUMENT` with
//!   `BadRequest` field violations, nothing reserved or journaled), then
//!   records through the agency's [`Recorder`]: idempotency key, policy
//!   check in this agency's view, durable journal append, and with
//!   `send_to` a disclosure that needs a consent or legal basis (refused
//!   `FAILED_PRECONDITION` naming the rule, before anything is journaled).
//! - Rules live in the policy crate, not here. In particular cooperation and
//!   proceedings status is in the `PROCEEDINGS` category, which the policy
//!   never lets into an assistance disclosure (CETS 197 Art. 12(6):
//!   assistance never depends on cooperation with police).
//! - No personal data: indicators are namespaced codes
//!   (`ilo.debt_bondage`), the deciding officer is named by role only, and
//!   nothing here is logged beyond what the node's request span records.

#![forbid(unsafe_code)]

use tonic::{Request, Response, Status};
use waymark_agency::{ApiError, Recorder};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::waymark::police::v1 as police;
use waymark_proto::waymark::police::v1::police_service_server::{
    PoliceService, PoliceServiceServer,
};

/// Most indicator codes in one signal.
pub const MAX_INDICATORS: usize = 32;
/// Longest indicator code or officer role, in characters.
pub const MAX_CODE_LEN: usize = 64;

/// Adds the `PoliceService` of the agency behind `recorder` to `services`.
pub fn add_to(services: waymark_node::Services, recorder: Recorder) -> waymark_node::Services {
    services.add_service(PoliceServiceServer::new(Police(recorder)))
}

/// The service: a thin layer of request checks over the shared write path.
struct Police(Recorder);

type Bad = Vec<(String, String)>;

fn bad(v: &mut Bad, field: &str, why: impl Into<String>) {
    v.push((field.to_owned(), why.into()));
}

fn done(v: Bad) -> Result<(), ApiError> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(v))
    }
}

/// Checks an enum field: `required` refuses 0 (`UNSPECIFIED`); unknown
/// numbers are always refused.
fn enumerated<E: TryFrom<i32>>(v: &mut Bad, field: &str, value: i32, required: bool) {
    if value == 0 && required {
        bad(v, field, "required");
    } else if E::try_from(value).is_err() {
        bad(v, field, format!("unknown value {value}"));
    }
}

/// `ilo.debt_bondage`: dot-separated lowercase segments (`a-z`, `0-9`, `_`,
/// each starting with a letter), at least two. Codes, never free text.
fn is_indicator(s: &str) -> bool {
    let segment = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    s.chars().count() <= MAX_CODE_LEN && s.split('.').count() >= 2 && s.split('.').all(segment)
}

/// A role such as "duty inspector": letters, spaces and `-/().,'` only, so
/// no numbers (badge, phone) or addresses fit.
fn is_role(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.chars().count() <= MAX_CODE_LEN
        && t.chars()
            .all(|c| c.is_alphabetic() || " -/().,'".contains(c))
}

fn check_signal(r: &police::RecordSignalRequest) -> Result<(), ApiError> {
    let mut v = Bad::new();
    enumerated::<pb::IdentificationChannel>(&mut v, "channel", r.channel, true);
    if r.indicators.len() > MAX_INDICATORS {
        bad(&mut v, "indicators", format!("at most {MAX_INDICATORS}"));
    }
    for (i, code) in r.indicators.iter().enumerate() {
        if !is_indicator(code) {
            bad(
                &mut v,
                &format!("indicators[{i}]"),
                format!(
                    "must be an indicator code such as ilo.debt_bondage (lowercase, dot-separated, \
                     at most {MAX_CODE_LEN} characters), never free text about the person"
                ),
            );
        } else if r.indicators[..i].contains(code) {
            bad(&mut v, &format!("indicators[{i}]"), "listed twice");
        }
    }
    for (i, f) in r.forms.iter().enumerate() {
        enumerated::<pb::ExploitationForm>(&mut v, &format!("forms[{i}]"), *f, true);
    }
    done(v)
}

fn check_grounds(r: &police::DecideReasonableGroundsRequest) -> Result<(), ApiError> {
    let mut v = Bad::new();
    if !is_role(&r.decided_by_role) {
        bad(
            &mut v,
            "decided_by_role",
            format!(
                "required: the competent officer's role (e.g. \"duty inspector\"), never a name or \
                 number; letters, spaces and -/().,' only, at most {MAX_CODE_LEN} characters"
            ),
        );
    }
    done(v)
}

fn check_conclusion(r: &police::ConcludeIdentificationRequest) -> Result<(), ApiError> {
    let mut v = Bad::new();
    enumerated::<pb::IdentificationOutcome>(&mut v, "outcome", r.outcome, true);
    done(v)
}

fn check_proceedings(r: &police::RecordProceedingsStatusRequest) -> Result<(), ApiError> {
    let mut v = Bad::new();
    enumerated::<pb::CooperationStatus>(&mut v, "cooperation", r.cooperation, false);
    enumerated::<pb::ProceedingsStage>(&mut v, "stage", r.stage, false);
    if r.cooperation == 0 && r.stage == 0 {
        bad(
            &mut v,
            "cooperation",
            "set the cooperation status, the stage of proceedings, or both",
        );
    }
    done(v)
}

#[tonic::async_trait]
impl PoliceService for Police {
    async fn record_signal(
        &self,
        req: Request<police::RecordSignalRequest>,
    ) -> Result<Response<police::RecordSignalResponse>, Status> {
        let r = req.into_inner();
        check_signal(&r)?;
        let body = B::SignalReceived(pb::SignalReceived {
            channel: r.channel,
            indicators: r.indicators.clone(),
            forms: r.forms.clone(),
        });
        let recorded = self
            .0
            .record_case_event(
                "RecordSignal",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(police::RecordSignalResponse {
            recorded: Some(recorded),
        }))
    }

    async fn decide_reasonable_grounds(
        &self,
        req: Request<police::DecideReasonableGroundsRequest>,
    ) -> Result<Response<police::DecideReasonableGroundsResponse>, Status> {
        let r = req.into_inner();
        check_grounds(&r)?;
        let body = B::ReasonableGroundsDecided(pb::ReasonableGroundsDecided {
            positive: r.positive,
            decided_by_role: r.decided_by_role.trim().to_owned(),
        });
        let recorded = self
            .0
            .record_case_event(
                "DecideReasonableGrounds",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(police::DecideReasonableGroundsResponse {
            recorded: Some(recorded),
        }))
    }

    async fn conclude_identification(
        &self,
        req: Request<police::ConcludeIdentificationRequest>,
    ) -> Result<Response<police::ConcludeIdentificationResponse>, Status> {
        let r = req.into_inner();
        check_conclusion(&r)?;
        let body = B::IdentificationConcluded(pb::IdentificationConcluded { outcome: r.outcome });
        let recorded = self
            .0
            .record_case_event(
                "ConcludeIdentification",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(police::ConcludeIdentificationResponse {
            recorded: Some(recorded),
        }))
    }

    async fn record_proceedings_status(
        &self,
        req: Request<police::RecordProceedingsStatusRequest>,
    ) -> Result<Response<police::RecordProceedingsStatusResponse>, Status> {
        let r = req.into_inner();
        check_proceedings(&r)?;
        let body = B::ProceedingsStatusRecorded(pb::ProceedingsStatusRecorded {
            cooperation: r.cooperation,
            stage: r.stage,
            witness: r.witness,
        });
        let recorded = self
            .0
            .record_case_event(
                "RecordProceedingsStatus",
                &r.idempotency_key,
                &r,
                &r.case_id,
                body,
                r.send_to.as_ref(),
            )
            .await?;
        Ok(Response::new(police::RecordProceedingsStatusResponse {
            recorded: Some(recorded),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_are_codes_not_text() {
        assert!(is_indicator("ilo.debt_bondage"));
        assert!(is_indicator("nrm.bg.v2.document_retention"));
        for s in [
            "debt_bondage",
            "ilo.",
            "ilo..x",
            "Ilo.x",
            "ilo.x y",
            "ilo.1x",
            "",
        ] {
            assert!(!is_indicator(s), "{s}");
        }
        assert!(!is_indicator(&format!("ilo.{}", "a".repeat(MAX_CODE_LEN))));
    }

    #[test]
    fn roles_hold_no_numbers_or_contacts() {
        assert!(is_role("duty inspector"));
        assert!(is_role("старши инспектор"));
        assert!(is_role("Head, Anti-Trafficking Unit (GDBOP)"));
        for s in ["", "  ", "inspector 4411", "a@b.bg", "+359 2 982"] {
            assert!(!is_role(s), "{s}");
        }
    }

    #[test]
    fn a_proceedings_status_says_something() {
        let r = police::RecordProceedingsStatusRequest::default();
        assert!(check_proceedings(&r).is_err());
        let r = police::RecordProceedingsStatusRequest {
            stage: pb::ProceedingsStage::Investigation as i32,
            ..Default::default()
        };
        assert!(check_proceedings(&r).is_ok());
        let r = police::RecordProceedingsStatusRequest {
            cooperation: 99,
            stage: 1,
            ..Default::default()
        };
        assert!(check_proceedings(&r).is_err());
    }
}
