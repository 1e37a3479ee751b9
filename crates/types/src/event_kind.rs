//! Every kind of event, who may originate it, and what data it carries.

use crate::{AgencyKind, DataCategory, token_enum};

token_enum! {
    /// The kind of a signed event. Mirrors the `body` oneof of
    /// `waymark.v1.Event`; the token is the last token of the event's NATS
    /// subject (`waymark.v1.evt.<sender>.<recipient>.<kind>`).
    pub enum EventKind("event kind") {
        // Cases, consent and refusal: any agency.
        /// A case is opened; the opening agency becomes its first custodian.
        CaseOpened => "case_opened",
        /// The person (or their representative) consents to sharing, within a scope.
        ConsentGranted => "consent_granted",
        /// A consent is withdrawn from a point in time on; never retroactively.
        ConsentWithdrawn => "consent_withdrawn",
        /// A recipient confirms it has acted on a withdrawal.
        WithdrawalAcknowledged => "withdrawal_acknowledged",
        /// The person refuses assistance, referral or disclosure.
        RefusalRecorded => "refusal_recorded",
        /// The custodian closes the case with an outcome.
        CaseClosed => "case_closed",
        /// An agency destroyed the personal data it held for the case (its per-case key).
        CaseErased => "case_erased",
        /// A recipient of an erasure notice confirms it erased its copy.
        ErasureAcknowledged => "erasure_acknowledged",
        // Referral: a service request, custody unchanged.
        /// One agency asks another for a service for the person.
        ReferralRequested => "referral_requested",
        /// The receiving agency has taken the request in and is evaluating it.
        ReferralReceived => "referral_received",
        /// The receiving agency accepts the request.
        ReferralAccepted => "referral_accepted",
        /// The receiving agency declines the request, with a reason.
        ReferralRejected => "referral_rejected",
        /// The receiving agency starts delivering the service.
        ReferralStarted => "referral_started",
        /// The service was delivered.
        ReferralCompleted => "referral_completed",
        /// The service could not be delivered, with a reason.
        ReferralFailed => "referral_failed",
        /// The requester withdraws the request before completion.
        ReferralCancelled => "referral_cancelled",
        // Handover: custody moves, two-phase.
        /// The custodian offers custody of the case to a named agency.
        HandoverOffered => "handover_offered",
        /// The offered agency accepts and becomes custodian.
        HandoverAccepted => "handover_accepted",
        /// The offered agency declines; custody stays.
        HandoverRejected => "handover_rejected",
        /// The custodian withdraws a pending offer.
        HandoverCancelled => "handover_cancelled",
        /// A pending offer passed its expiry unanswered; custody stays.
        HandoverExpired => "handover_expired",
        // Delivery.
        /// A receiving agency's signed proof that it journaled (or quarantined) an event.
        Receipt => "receipt",
        // Police.
        /// An indication that a person may be a victim of trafficking.
        SignalReceived => "signal_received",
        /// The reasonable-grounds decision (CETS 197 Art. 10(2)).
        ReasonableGroundsDecided => "reasonable_grounds_decided",
        /// Conclusive identification as a victim, or not.
        IdentificationConcluded => "identification_concluded",
        /// Cooperation with police and state of criminal proceedings.
        ProceedingsStatusRecorded => "proceedings_status_recorded",
        // Shelter.
        /// Free places in a shelter (agency-level, not about a case).
        CapacityUpdated => "capacity_updated",
        /// Admission to a shelter.
        Admitted => "admitted",
        /// Discharge from a shelter.
        Discharged => "discharged",
        /// A safety plan agreed with the person.
        SafetyPlanAgreed => "safety_plan_agreed",
        /// Start of the recovery and reflection period (CETS 197 Art. 13).
        ReflectionPeriodStarted => "reflection_period_started",
        // Shelter and NGO.
        /// A service delivered: medical, psychological, legal, material, ...
        ServiceDelivered => "service_delivered",
        // NGO.
        /// A contact made by outreach workers.
        OutreachContactRecorded => "outreach_contact_recorded",
        /// A call to a hotline; may be anonymous.
        HotlineIntakeRecorded => "hotline_intake_recorded",
        // NGO and labour.
        /// A monitoring contact after assistance.
        MonitoringContactRecorded => "monitoring_contact_recorded",
        // IOM return desk.
        /// The person asks for assisted voluntary return.
        ReturnRequested => "return_requested",
        /// Return risk assessment, including a child's best interests (Art. 16(7)).
        ReturnRiskAssessed => "return_risk_assessed",
        /// Travel documents obtained.
        TravelDocumentsIssued => "travel_documents_issued",
        /// A return date fixed. Guarded by identification, reflection and child rules.
        ReturnScheduled => "return_scheduled",
        /// The person departed.
        DepartureRecorded => "departure_recorded",
        /// The origin-country partner confirms reception.
        ReceptionConfirmed => "reception_confirmed",
        // Ministry of labour.
        /// A reintegration plan agreed with the person.
        ReintegrationPlanAgreed => "reintegration_plan_agreed",
        /// Vocational training, job referral, subsidised employment or micro-credit.
        ReintegrationMeasureRecorded => "reintegration_measure_recorded",
        /// A monitoring schedule fixed; visits are overdue when missed.
        MonitoringScheduled => "monitoring_scheduled",
    }
}

const ANY: &[AgencyKind] = AgencyKind::ALL;

impl EventKind {
    /// The agency kinds allowed to originate (sign and send) this event kind.
    pub fn originators(self) -> &'static [AgencyKind] {
        use AgencyKind::*;
        use EventKind::*;
        match self {
            CaseOpened
            | ConsentGranted
            | ConsentWithdrawn
            | WithdrawalAcknowledged
            | RefusalRecorded
            | CaseClosed
            | CaseErased
            | ErasureAcknowledged
            | ReferralRequested
            | ReferralReceived
            | ReferralAccepted
            | ReferralRejected
            | ReferralStarted
            | ReferralCompleted
            | ReferralFailed
            | ReferralCancelled
            | HandoverOffered
            | HandoverAccepted
            | HandoverRejected
            | HandoverCancelled
            | HandoverExpired
            | Receipt => ANY,
            SignalReceived
            | ReasonableGroundsDecided
            | IdentificationConcluded
            | ProceedingsStatusRecorded => &[Police],
            CapacityUpdated
            | Admitted
            | Discharged
            | SafetyPlanAgreed
            | ReflectionPeriodStarted => &[Shelter],
            ServiceDelivered => &[Shelter, Ngo],
            OutreachContactRecorded | HotlineIntakeRecorded => &[Ngo],
            MonitoringContactRecorded => &[Ngo, Labour],
            ReturnRequested
            | ReturnRiskAssessed
            | TravelDocumentsIssued
            | ReturnScheduled
            | DepartureRecorded
            | ReceptionConfirmed => &[ReturnDesk],
            ReintegrationPlanAgreed | ReintegrationMeasureRecorded | MonitoringScheduled => {
                &[Labour]
            }
        }
    }

    /// Whether an agency of `kind` may originate this event kind.
    pub fn may_originate(self, kind: AgencyKind) -> bool {
        self.originators().contains(&kind)
    }

    /// The data category the event's own body belongs to. Sending the event to
    /// another agency discloses data of this category (plus any categories of
    /// the encrypted personal-data sections it carries), so it needs a basis.
    pub fn category(self) -> DataCategory {
        use DataCategory as C;
        use EventKind::*;
        match self {
            ProceedingsStatusRecorded => C::Proceedings,
            SafetyPlanAgreed | ReturnRiskAssessed => C::Safety,
            Admitted
            | Discharged
            | ServiceDelivered
            | OutreachContactRecorded
            | HotlineIntakeRecorded
            | MonitoringContactRecorded => C::Assistance,
            TravelDocumentsIssued
            | ReturnRequested
            | ReturnScheduled
            | DepartureRecorded
            | ReceptionConfirmed => C::Residence,
            ReintegrationPlanAgreed | ReintegrationMeasureRecorded | MonitoringScheduled => {
                C::Reintegration
            }
            _ => C::CaseCore,
        }
    }

    /// Whether this kind concerns a case (every kind but [`EventKind::CapacityUpdated`]).
    pub fn is_case_event(self) -> bool {
        self != EventKind::CapacityUpdated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_originator_and_a_unique_subject_safe_token() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(!k.originators().is_empty(), "{k}");
            assert!(seen.insert(k.as_str()), "duplicate token {k}");
            assert!(
                k.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{k} is not subject-safe"
            );
        }
    }

    #[test]
    fn agency_kinds_originate_only_their_own_pathway_events() {
        assert!(EventKind::ReasonableGroundsDecided.may_originate(AgencyKind::Police));
        assert!(!EventKind::ReasonableGroundsDecided.may_originate(AgencyKind::Ngo));
        assert!(!EventKind::ReturnScheduled.may_originate(AgencyKind::Police));
        assert!(EventKind::ReturnScheduled.may_originate(AgencyKind::ReturnDesk));
        assert!(EventKind::HandoverOffered.may_originate(AgencyKind::Labour));
    }

    #[test]
    fn proceedings_data_is_its_own_category() {
        assert_eq!(
            EventKind::ProceedingsStatusRecorded.category(),
            DataCategory::Proceedings
        );
        assert_ne!(
            EventKind::ServiceDelivered.category(),
            DataCategory::Proceedings
        );
    }
}
