//! The domain event the rules are written against.
//!
//! The wire format (`waymark.v1.Event`) is converted into [`Event`]; bodies
//! hold only rule-relevant data and never personal data.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use waymark_types::{
    AgencyId, AgencyKind, CaseId, DataCategory, EventId, EventKind, LegalBasis, Purpose, Timestamp,
};

use crate::rules::RuleSetRef;
use crate::vocab::{CaseOutcome, ConsentGrant, Refusal, Service, ServiceReason};

/// An agency as a party to an event: its id and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Party {
    /// The agency's id.
    pub id: AgencyId,
    /// The agency's kind.
    pub kind: AgencyKind,
}

/// What a disclosure relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisclosureBasis {
    /// A consent, named by the id of its `ConsentGranted` event.
    Consent(EventId),
    /// A legal basis other than consent, with a mandatory written justification
    /// (which must not contain personal data: it is journaled in clear).
    Legal {
        /// The legal basis invoked.
        basis: LegalBasis,
        /// Why the basis applies to this disclosure.
        justification: String,
    },
}

/// The disclosure an event makes to its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// Why the data is shared.
    pub purpose: Purpose,
    /// What the sharing relies on.
    pub basis: DisclosureBasis,
    /// Categories shared in addition to the event kind's own
    /// [`EventKind::category`], e.g. the encrypted sections of a referral.
    pub shares: BTreeSet<DataCategory>,
}

/// One signed event, as the policy core sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id; also names the consent, referral or offer it creates.
    pub id: EventId,
    /// The case it is about.
    pub case: CaseId,
    /// The originating (signing) agency.
    pub sender: Party,
    /// The agency it is sent to, if any. An event with a recipient discloses
    /// case data to it.
    pub recipient: Option<Party>,
    /// When the sender made it.
    pub at: Timestamp,
    /// The rule set it was made under.
    pub rule_set: RuleSetRef,
    /// The disclosure it makes, if it is sent to another agency.
    pub disclosure: Option<Disclosure>,
    /// What happened.
    pub body: Body,
}

impl Event {
    /// Every data category the event discloses: its kind's category plus the
    /// declared extra categories.
    pub fn categories(&self) -> BTreeSet<DataCategory> {
        let mut c = BTreeSet::from([self.body.kind().category()]);
        if let Some(d) = &self.disclosure {
            c.extend(d.shares.iter().copied());
        }
        c
    }
}

/// What happened, with the fields the rules need. One variant per
/// [`EventKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Variants are documented on `EventKind`; fields below.
pub enum Body {
    CaseOpened {
        /// The person is a child or presumed a child (age uncertain, CETS 197 Art. 10(3)).
        presumed_child: bool,
    },
    ConsentGranted(ConsentGrant),
    ConsentWithdrawn {
        /// The consent withdrawn.
        consent: EventId,
        /// From when; never before the withdrawal is recorded.
        effective_at: Timestamp,
    },
    WithdrawalAcknowledged {
        /// The withdrawn consent acknowledged.
        consent: EventId,
    },
    RefusalRecorded(Refusal),
    CaseClosed {
        /// How the case ended.
        outcome: CaseOutcome,
    },
    CaseErased {
        /// The other agency's `CaseErased` this erasure acted on; `None` when
        /// requested at the erasing agency.
        requested_by: Option<EventId>,
    },
    ErasureAcknowledged {
        /// The `CaseErased` acknowledged.
        erasure: EventId,
    },
    ReferralRequested {
        /// The service asked for. The performer is the event's recipient.
        service: Service,
    },
    ReferralReceived {
        /// The referral (its `ReferralRequested` event id).
        referral: EventId,
    },
    ReferralAccepted {
        /// The referral.
        referral: EventId,
    },
    ReferralRejected {
        /// The referral.
        referral: EventId,
        /// Why.
        reason: ServiceReason,
    },
    ReferralStarted {
        /// The referral.
        referral: EventId,
    },
    ReferralCompleted {
        /// The referral.
        referral: EventId,
    },
    ReferralFailed {
        /// The referral.
        referral: EventId,
        /// Why.
        reason: ServiceReason,
    },
    ReferralCancelled {
        /// The referral.
        referral: EventId,
    },
    HandoverOffered {
        /// The agency offered custody; must equal the event's recipient.
        to: AgencyId,
        /// The offer lapses at this instant (an accept at or after it is refused).
        expires_at: Timestamp,
    },
    HandoverAccepted {
        /// The offer (its `HandoverOffered` event id).
        offer: EventId,
    },
    HandoverRejected {
        /// The offer.
        offer: EventId,
        /// Why.
        reason: ServiceReason,
    },
    HandoverCancelled {
        /// The offer.
        offer: EventId,
    },
    HandoverExpired {
        /// The offer.
        offer: EventId,
    },
    Receipt {
        /// The event received.
        of: EventId,
        /// Whether it was quarantined instead of accepted.
        quarantined: bool,
    },
    SignalReceived,
    ReasonableGroundsDecided {
        /// Whether there are reasonable grounds to believe the person is a victim.
        positive: bool,
    },
    IdentificationConcluded {
        /// Whether the person was identified as a victim.
        victim: bool,
    },
    ProceedingsStatusRecorded {
        /// Whether the person cooperates with police (never a condition of assistance).
        cooperating: bool,
    },
    CapacityUpdated {
        /// Free places.
        free_places: u32,
    },
    Admitted,
    Discharged {
        /// Why.
        reason: ServiceReason,
    },
    SafetyPlanAgreed,
    ReflectionPeriodStarted {
        /// First day.
        starts_at: Timestamp,
        /// End, exclusive.
        ends_at: Timestamp,
    },
    ServiceDelivered {
        /// Which service.
        service: Service,
    },
    OutreachContactRecorded,
    HotlineIntakeRecorded {
        /// The caller did not identify themselves.
        anonymous: bool,
    },
    MonitoringContactRecorded,
    ReturnRequested {
        /// The person asked for return themselves (voluntary return).
        requested_by_person: bool,
    },
    ReturnRiskAssessed {
        /// The assessment found return safe and, for a child, in the child's best interests.
        best_interests_ok: bool,
        /// The assessment treated the person as a child.
        child: bool,
    },
    TravelDocumentsIssued,
    ReturnScheduled {
        /// Planned departure.
        departure_at: Timestamp,
    },
    DepartureRecorded,
    ReceptionConfirmed,
    ReintegrationPlanAgreed,
    ReintegrationMeasureRecorded,
    MonitoringScheduled,
}

impl Body {
    /// The event kind of this body.
    pub fn kind(&self) -> EventKind {
        use EventKind as K;
        match self {
            Body::CaseOpened { .. } => K::CaseOpened,
            Body::ConsentGranted(_) => K::ConsentGranted,
            Body::ConsentWithdrawn { .. } => K::ConsentWithdrawn,
            Body::WithdrawalAcknowledged { .. } => K::WithdrawalAcknowledged,
            Body::RefusalRecorded(_) => K::RefusalRecorded,
            Body::CaseClosed { .. } => K::CaseClosed,
            Body::CaseErased { .. } => K::CaseErased,
            Body::ErasureAcknowledged { .. } => K::ErasureAcknowledged,
            Body::ReferralRequested { .. } => K::ReferralRequested,
            Body::ReferralReceived { .. } => K::ReferralReceived,
            Body::ReferralAccepted { .. } => K::ReferralAccepted,
            Body::ReferralRejected { .. } => K::ReferralRejected,
            Body::ReferralStarted { .. } => K::ReferralStarted,
            Body::ReferralCompleted { .. } => K::ReferralCompleted,
            Body::ReferralFailed { .. } => K::ReferralFailed,
            Body::ReferralCancelled { .. } => K::ReferralCancelled,
            Body::HandoverOffered { .. } => K::HandoverOffered,
            Body::HandoverAccepted { .. } => K::HandoverAccepted,
            Body::HandoverRejected { .. } => K::HandoverRejected,
            Body::HandoverCancelled { .. } => K::HandoverCancelled,
            Body::HandoverExpired { .. } => K::HandoverExpired,
            Body::Receipt { .. } => K::Receipt,
            Body::SignalReceived => K::SignalReceived,
            Body::ReasonableGroundsDecided { .. } => K::ReasonableGroundsDecided,
            Body::IdentificationConcluded { .. } => K::IdentificationConcluded,
            Body::ProceedingsStatusRecorded { .. } => K::ProceedingsStatusRecorded,
            Body::CapacityUpdated { .. } => K::CapacityUpdated,
            Body::Admitted => K::Admitted,
            Body::Discharged { .. } => K::Discharged,
            Body::SafetyPlanAgreed => K::SafetyPlanAgreed,
            Body::ReflectionPeriodStarted { .. } => K::ReflectionPeriodStarted,
            Body::ServiceDelivered { .. } => K::ServiceDelivered,
            Body::OutreachContactRecorded => K::OutreachContactRecorded,
            Body::HotlineIntakeRecorded { .. } => K::HotlineIntakeRecorded,
            Body::MonitoringContactRecorded => K::MonitoringContactRecorded,
            Body::ReturnRequested { .. } => K::ReturnRequested,
            Body::ReturnRiskAssessed { .. } => K::ReturnRiskAssessed,
            Body::TravelDocumentsIssued => K::TravelDocumentsIssued,
            Body::ReturnScheduled { .. } => K::ReturnScheduled,
            Body::DepartureRecorded => K::DepartureRecorded,
            Body::ReceptionConfirmed => K::ReceptionConfirmed,
            Body::ReintegrationPlanAgreed => K::ReintegrationPlanAgreed,
            Body::ReintegrationMeasureRecorded => K::ReintegrationMeasureRecorded,
            Body::MonitoringScheduled => K::MonitoringScheduled,
        }
    }
}

/// How an event sent to another agency is treated by the disclosure rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// Discloses case data: needs a consent or legal basis covering every
    /// category, and respects refusals.
    Disclosure,
    /// A reply within a process the recipient started or takes part in
    /// (receipts, referral and handover answers): carries no data beyond the
    /// case reference and status, so needs no basis unless it declares extra
    /// categories.
    Reply,
    /// A notice that restricts processing (a withdrawal, an acknowledgement, a
    /// refusal): needs no basis and is never blocked, so rights can always be
    /// exercised.
    Notice,
    /// A consent grant sent on: allowed to agencies within its own scope.
    ConsentForward,
}

/// How `kind`, when sent to another agency, is treated by the disclosure rules.
pub fn sending(kind: EventKind) -> Sending {
    use EventKind as K;
    match kind {
        K::ConsentWithdrawn
        | K::WithdrawalAcknowledged
        | K::RefusalRecorded
        | K::CaseErased
        | K::ErasureAcknowledged => Sending::Notice,
        K::ConsentGranted => Sending::ConsentForward,
        K::Receipt
        | K::ReferralReceived
        | K::ReferralAccepted
        | K::ReferralRejected
        | K::ReferralStarted
        | K::ReferralCompleted
        | K::ReferralFailed
        | K::ReferralCancelled
        | K::HandoverAccepted
        | K::HandoverRejected
        | K::HandoverCancelled
        | K::HandoverExpired => Sending::Reply,
        _ => Sending::Disclosure,
    }
}
