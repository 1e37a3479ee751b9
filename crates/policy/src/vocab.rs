//! The rule-relevant contents of event bodies: scopes, reasons, outcomes.
//!
//! Reasons are enums, not free text, so that rules can check them (a referral
//! may not be rejected for "no cooperation with police", CETS 197 Art. 12(6))
//! and so that no personal data can hide in them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use waymark_types::{AgencyId, AgencyKind, DataCategory, Purpose, Timestamp};

/// Who a consent or refusal covers: one agency, or every agency of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Recipient {
    /// One named agency.
    Agency(AgencyId),
    /// Every agency of this kind.
    Kind(AgencyKind),
}

impl Recipient {
    /// Whether this entry covers agency `id` of kind `kind`.
    pub fn covers(&self, id: &AgencyId, kind: AgencyKind) -> bool {
        match self {
            Recipient::Agency(a) => a == id,
            Recipient::Kind(k) => *k == kind,
        }
    }
}

/// A set of recipients, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientSet {
    /// Every agency.
    All,
    /// Only these agencies and kinds.
    Only(BTreeSet<Recipient>),
}

impl RecipientSet {
    /// Whether the set covers agency `id` of kind `kind`.
    pub fn covers(&self, id: &AgencyId, kind: AgencyKind) -> bool {
        match self {
            RecipientSet::All => true,
            RecipientSet::Only(s) => s.iter().any(|r| r.covers(id, kind)),
        }
    }

    /// Whether the set covers nobody.
    pub fn is_empty(&self) -> bool {
        matches!(self, RecipientSet::Only(s) if s.is_empty())
    }
}

/// How a consent was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentMethod {
    /// A signed form.
    Written,
    /// Oral consent, recorded by the caseworker with a witness.
    Oral,
    /// An electronic signature or recorded confirmation.
    Electronic,
}

/// Who gave a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GivenBy {
    /// The person alone.
    Person,
    /// The person together with their guardian or legal representative.
    PersonWithRepresentative,
    /// A guardian or legal representative on the person's behalf (a child,
    /// or an adult without capacity).
    Representative,
}

impl GivenBy {
    /// Whether a guardian or legal representative took part.
    pub fn involves_representative(self) -> bool {
        !matches!(self, GivenBy::Person)
    }
}

/// What a consent permits: to whom, for what, which data, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentScope {
    /// Agencies (by id or kind) that may receive data.
    pub recipients: BTreeSet<Recipient>,
    /// Purposes the data may be shared for.
    pub purposes: BTreeSet<Purpose>,
    /// Data categories that may be shared.
    pub categories: BTreeSet<DataCategory>,
    /// Start of validity (the consent is in force from the later of this and
    /// the time it was recorded: a consent is never retroactive either).
    pub valid_from: Timestamp,
    /// End of validity, exclusive; `None` for open-ended until withdrawn.
    pub valid_until: Option<Timestamp>,
}

/// The body of a `ConsentGranted` event. The consent's id is the event's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    /// What the consent permits.
    pub scope: ConsentScope,
    /// How it was obtained. The obtaining agency is the event's sender.
    pub method: ConsentMethod,
    /// Who gave it.
    pub given_by: GivenBy,
}

/// What a person refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Refused {
    /// Assistance: referrals and disclosures for assistance purposes stop.
    Assistance,
    /// Referral: referral requests to the covered agencies stop.
    Referral,
    /// Disclosure: every disclosure to the covered agencies stops.
    Disclosure,
}

/// The body of a `RefusalRecorded` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What was refused.
    pub of: Refused,
    /// Towards whom.
    pub recipients: RecipientSet,
    /// For which purposes; empty means every purpose.
    pub purposes: BTreeSet<Purpose>,
}

impl Refusal {
    /// Whether the refusal covers disclosures for `purpose`.
    pub fn covers_purpose(&self, purpose: Purpose) -> bool {
        self.purposes.is_empty() || self.purposes.contains(&purpose)
    }
}

/// A service asked for in a referral or recorded as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// Safe accommodation.
    Accommodation,
    /// Medical care.
    Medical,
    /// Psychological support.
    Psychological,
    /// Legal counselling or representation.
    Legal,
    /// Material assistance.
    Material,
    /// Interpretation and translation.
    Interpretation,
    /// Education or vocational training.
    Education,
    /// Employment support.
    Employment,
    /// Assisted voluntary return.
    Return,
    /// Anything else.
    Other,
}

/// Why an agency declines, ends or cannot deliver a service or custody.
///
/// [`ServiceReason::NoCooperationWithPolice`] exists so that a back office
/// sending it gets a precise refusal: assistance may never depend on
/// cooperation with police (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceReason {
    /// No free place or staff.
    NoCapacity,
    /// The service is outside the agency's mandate.
    OutsideMandate,
    /// The person does not meet the eligibility criteria.
    NotEligible,
    /// The person declined or left.
    PersonDeclined,
    /// The service achieved its goals.
    GoalsAchieved,
    /// A safety risk to the person, other residents or staff.
    SafetyRisk,
    /// The person moved to another agency or service.
    TransferredElsewhere,
    /// Refused by rule: the person does not cooperate with police.
    NoCooperationWithPolice,
    /// Anything else.
    Other,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaseOutcome {
    /// Reintegrated in the country of destination.
    Reintegrated,
    /// Returned and received in the country of origin.
    Returned,
    /// Identification concluded the person is not a victim.
    NotIdentified,
    /// The person ended contact.
    ContactLost,
    /// The person declined further support.
    Declined,
    /// Anything else.
    Other,
}
