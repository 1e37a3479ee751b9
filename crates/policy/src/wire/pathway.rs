//! Pathway bodies: the steps only one kind of agency originates (police,
//! shelter, NGO, return desk, labour). Most carry nothing the rules use; their
//! enums and timestamps are still validated, so a malformed event is refused
//! here rather than journaled.

use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;

use super::body::At;
use super::error::Check;
use super::vocab;
use crate::event::Body;

/// Decodes a pathway body. Called for every body `super::body::decode` does
/// not handle itself, all of which are listed here.
pub(super) fn decode(c: &mut Check, b: &B) -> Option<Body> {
    Some(match b {
        // ---- Police.
        B::SignalReceived(m) => {
            let at = At("signal_received");
            let channel = c.enumerated(
                &at.f("channel"),
                m.channel,
                vocab::set::<pb::IdentificationChannel>,
            );
            let forms = c.enum_set(&at.f("forms"), &m.forms, vocab::set::<pb::ExploitationForm>);
            let _ = (channel?, forms?);
            Body::SignalReceived
        }
        B::ReasonableGroundsDecided(m) => Body::ReasonableGroundsDecided {
            positive: m.positive,
        },
        B::IdentificationConcluded(m) => Body::IdentificationConcluded {
            victim: c.enumerated(
                &At("identification_concluded").f("outcome"),
                m.outcome,
                vocab::victim,
            )?,
        },
        B::ProceedingsStatusRecorded(m) => {
            let at = At("proceedings_status_recorded");
            let cooperation =
                c.open_enum::<pb::CooperationStatus>(&at.f("cooperation"), m.cooperation);
            let stage = c.open_enum::<pb::ProceedingsStage>(&at.f("stage"), m.stage);
            let _ = stage?;
            Body::ProceedingsStatusRecorded {
                cooperating: cooperation? == pb::CooperationStatus::Cooperating,
            }
        }
        // ---- Shelter.
        B::Admitted(_) => Body::Admitted,
        B::Discharged(m) => Body::Discharged {
            reason: c.enumerated(
                &At("discharged").f("reason"),
                m.reason,
                vocab::discharge_reason,
            )?,
        },
        B::SafetyPlanAgreed(m) => {
            c.opt_time(
                &At("safety_plan_agreed").f("review_by"),
                m.review_by.as_ref(),
            )?;
            Body::SafetyPlanAgreed
        }
        B::ReflectionPeriodStarted(m) => {
            let at = At("reflection_period_started");
            let starts_at = c.time(
                &at.f("starts_at"),
                m.starts_at.as_ref(),
                "the first day of the recovery and reflection period",
            );
            let ends_at = c.time(
                &at.f("ends_at"),
                m.ends_at.as_ref(),
                "the end of the recovery and reflection period",
            );
            Body::ReflectionPeriodStarted {
                starts_at: starts_at?,
                ends_at: ends_at?,
            }
        }
        B::ServiceDelivered(m) => Body::ServiceDelivered {
            service: c.enumerated(
                &At("service_delivered").f("service"),
                m.service,
                vocab::service,
            )?,
        },
        // ---- NGO.
        B::OutreachContactRecorded(_) => Body::OutreachContactRecorded,
        B::HotlineIntakeRecorded(m) => Body::HotlineIntakeRecorded {
            anonymous: m.anonymous,
        },
        B::MonitoringContactRecorded(m) => {
            c.enumerated(
                &At("monitoring_contact_recorded").f("mode"),
                m.mode,
                vocab::set::<pb::ContactMode>,
            )?;
            Body::MonitoringContactRecorded
        }
        // ---- Return desk.
        B::ReturnRequested(m) => Body::ReturnRequested {
            requested_by_person: m.requested_by_person,
        },
        B::ReturnRiskAssessed(m) => {
            let safe = c.enumerated(
                &At("return_risk_assessed").f("risk"),
                m.risk,
                vocab::return_safe,
            )?;
            // The policy's one flag means "return found safe and, for a
            // child, in the child's best interests"; the proto splits it into
            // a risk level and a child-only best-interests flag.
            Body::ReturnRiskAssessed {
                best_interests_ok: safe && (!m.child || m.best_interests_ok),
                child: m.child,
            }
        }
        B::TravelDocumentsIssued(m) => {
            c.opt_time(
                &At("travel_documents_issued").f("valid_until"),
                m.valid_until.as_ref(),
            )?;
            Body::TravelDocumentsIssued
        }
        B::ReturnScheduled(m) => Body::ReturnScheduled {
            departure_at: c.time(
                &At("return_scheduled").f("departure_at"),
                m.departure_at.as_ref(),
                "the planned departure",
            )?,
        },
        B::DepartureRecorded(_) => Body::DepartureRecorded,
        B::ReceptionConfirmed(_) => Body::ReceptionConfirmed,
        // ---- Labour.
        B::ReintegrationPlanAgreed(m) => {
            c.opt_time(
                &At("reintegration_plan_agreed").f("review_by"),
                m.review_by.as_ref(),
            )?;
            Body::ReintegrationPlanAgreed
        }
        B::ReintegrationMeasureRecorded(m) => {
            c.enumerated(
                &At("reintegration_measure_recorded").f("measure"),
                m.measure,
                vocab::set::<pb::ReintegrationMeasure>,
            )?;
            Body::ReintegrationMeasureRecorded
        }
        B::MonitoringScheduled(m) => {
            let at = At("monitoring_scheduled");
            let visits: Vec<_> = m
                .visits
                .iter()
                .enumerate()
                .map(|(i, t)| c.opt_time(&at.f(&format!("visits[{i}]")), Some(t)))
                .collect();
            visits.into_iter().collect::<Option<Vec<_>>>()?;
            Body::MonitoringScheduled
        }
        // Handled by `super::body::decode` before it calls here.
        B::CaseOpened(_)
        | B::ConsentGranted(_)
        | B::ConsentWithdrawn(_)
        | B::WithdrawalAcknowledged(_)
        | B::RefusalRecorded(_)
        | B::CaseClosed(_)
        | B::CaseErased(_)
        | B::ErasureAcknowledged(_)
        | B::ReferralRequested(_)
        | B::ReferralReceived(_)
        | B::ReferralAccepted(_)
        | B::ReferralRejected(_)
        | B::ReferralStarted(_)
        | B::ReferralCompleted(_)
        | B::ReferralFailed(_)
        | B::ReferralCancelled(_)
        | B::HandoverOffered(_)
        | B::HandoverAccepted(_)
        | B::HandoverRejected(_)
        | B::HandoverCancelled(_)
        | B::HandoverExpired(_)
        | B::Receipt(_)
        | B::CapacityUpdated(_)
        | B::Forwarded(_) => {
            c.fail(
                "body",
                "internal error in the wire converter: body dispatched to the wrong decoder",
            );
            return None;
        }
    })
}
