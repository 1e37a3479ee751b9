//! Refusals and decisions: what a caseworker, a machine and an auditor see.

use std::fmt;

use serde::Serialize;
use waymark_types::{EventId, LegalBasis};

use crate::rules::RuleSetRef;

macro_rules! rules {
    ($($(#[$m:meta])* $v:ident => $code:literal,)+) => {
        /// A rule the policy core enforces. The code is a stable snake_case id
        /// (`<area>.<rule>`) that back offices, metrics and auditors match on;
        /// codes are never renamed once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule { $($(#[$m])* $v,)+ }

        impl Rule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [Rule] = &[$(Rule::$v,)+];

            /// The stable machine code, e.g. `custody.not_custodian`.
            pub const fn code(self) -> &'static str {
                match self { $(Rule::$v => $code,)+ }
            }
        }
    };
}

rules! {
    /// The caller passed a rule set other than the one the event names.
    RuleSetMismatch => "rules.mismatch",
    /// The event names a rule-set version this registry does not know.
    RuleSetUnknown => "rules.unknown",
    /// The event belongs to another case.
    WrongCase => "event.wrong_case",
    /// An event id already applied arrived again with different content.
    IdReused => "event.id_reused",
    /// The event is agency-level (capacity) and not about a case.
    NotCaseEvent => "event.not_case_event",
    /// The sender's agency kind may not originate this event kind.
    OriginatorNotAllowed => "event.originator_not_allowed",
    /// The event is addressed to its own sender.
    RecipientIsSender => "event.recipient_is_sender",
    /// The event must name a recipient and does not.
    RecipientMissing => "event.recipient_missing",
    /// The body names a different agency than the event's recipient.
    RecipientMismatch => "event.recipient_mismatch",
    /// A disclosure basis was given for an event sent to no one.
    BasisWithoutRecipient => "event.basis_without_recipient",
    /// The case has not been opened (or introduced) in this view.
    CaseNotOpened => "case.not_opened",
    /// The case was already opened.
    CaseAlreadyOpened => "case.already_opened",
    /// The case is closed.
    CaseClosed => "case.closed",
    /// Only the custodian may do this.
    NotCustodian => "custody.not_custodian",
    /// The agency kind may not hold custody under this rule set.
    KindMayNotHold => "custody.kind_may_not_hold",
    /// A handover offer is already pending.
    OfferPending => "custody.offer_pending",
    /// A pending offer passed its expiry but its expiry was not recorded.
    OfferExpiryUnrecorded => "custody.offer_expiry_unrecorded",
    /// An offer to the custodian itself.
    OfferToSelf => "custody.offer_to_self",
    /// The offer's expiry is not after the offer.
    OfferExpiryInvalid => "custody.offer_expiry_invalid",
    /// The offer's lifetime exceeds the rule set's maximum.
    OfferLifetimeTooLong => "custody.offer_lifetime_too_long",
    /// No such offer is known in this case.
    OfferUnknown => "custody.offer_unknown",
    /// The offer was already answered, cancelled or expired.
    OfferNotPending => "custody.offer_not_pending",
    /// The offer expired before it was accepted.
    OfferExpired => "custody.offer_expired",
    /// Expiry recorded before the offer's expiry instant.
    OfferNotYetExpired => "custody.offer_not_yet_expired",
    /// Only the offered agency may answer an offer.
    NotOfferee => "custody.not_offeree",
    /// Only the offering agency may cancel an offer.
    NotOfferer => "custody.not_offerer",
    /// The case cannot close while a handover is pending.
    CloseWithPendingOffer => "custody.close_with_pending_offer",
    /// No such referral is known in this case.
    ReferralUnknown => "referral.unknown",
    /// Only the agency asked to perform the referral may do this.
    NotPerformer => "referral.not_performer",
    /// Only the requesting agency may cancel a referral.
    NotRequester => "referral.not_requester",
    /// The referral's current status does not allow this step.
    ReferralInvalidTransition => "referral.invalid_transition",
    /// The consent is not known in this view.
    ConsentUnknown => "consent.unknown",
    /// The consent covers no recipient, purpose or category.
    ConsentEmptyScope => "consent.empty_scope",
    /// The consent's validity period ends before it starts.
    ConsentInvalidPeriod => "consent.invalid_period",
    /// A child's consent needs a guardian or legal representative.
    ConsentChildNeedsRepresentative => "consent.child_needs_representative",
    /// A consent grant was sent to an agency outside its own scope.
    ConsentForwardOutOfScope => "consent.forward_out_of_scope",
    /// A withdrawal dated before it was recorded.
    WithdrawalRetroactive => "consent.withdrawal_retroactive",
    /// The consent was already withdrawn.
    ConsentAlreadyWithdrawn => "consent.already_withdrawn",
    /// An acknowledgement for a consent that was not withdrawn.
    ConsentNotWithdrawn => "consent.not_withdrawn",
    /// The consent's validity period has not started.
    ConsentNotYetValid => "consent.not_yet_valid",
    /// The consent's validity period has ended.
    ConsentExpired => "consent.expired",
    /// The consent was withdrawn.
    ConsentWithdrawn => "consent.withdrawn",
    /// The recipient is not covered by the consent.
    ConsentRecipientOutOfScope => "consent.recipient_out_of_scope",
    /// The purpose is not covered by the consent.
    ConsentPurposeOutOfScope => "consent.purpose_out_of_scope",
    /// A data category is not covered by the consent.
    ConsentCategoryOutOfScope => "consent.category_out_of_scope",
    /// A disclosure without any consent or legal basis.
    NoBasis => "disclosure.no_basis",
    /// The sender's agency kind may not invoke that legal basis.
    LegalBasisNotPermitted => "disclosure.legal_basis_not_permitted",
    /// A legal basis without an adequate written justification.
    JustificationMissing => "disclosure.justification_missing",
    /// The person refused disclosure to this recipient.
    DisclosureRefused => "refusal.disclosure_refused",
    /// The person refused referral to this recipient.
    ReferralRefused => "refusal.referral_refused",
    /// The person refused assistance.
    AssistanceRefused => "refusal.assistance_refused",
    /// Reflection period shorter than the minimum (CETS 197 Art. 13).
    Art13ReflectionTooShort => "treaty.art13_reflection_too_short",
    /// Return scheduled while identification is pending (CETS 197 Art. 10(2)).
    Art10IdentificationPending => "treaty.art10_2_identification_pending",
    /// Return scheduled inside the reflection period (CETS 197 Art. 13).
    Art13ReturnInReflection => "treaty.art13_return_in_reflection_period",
    /// Child return without a favourable best-interests assessment (CETS 197 Art. 16(7)).
    Art16ChildBestInterests => "treaty.art16_7_child_best_interests",
    /// Proceedings data in an assistance disclosure (CETS 197 Art. 12(6)).
    Art12AssistanceSeparate => "treaty.art12_6_assistance_separate_from_proceedings",
    /// Assistance ended or refused for not cooperating with police (CETS 197 Art. 12(6)).
    Art12NotConditional => "treaty.art12_6_assistance_not_conditional",
    /// Departure recorded without a scheduled return.
    ReturnNotScheduled => "return.not_scheduled",
    /// An adult's return without a favourable risk assessment where the rule set requires one.
    ReturnRiskAssessmentRequired => "return.risk_assessment_required",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// Why an event or a disclosure was refused.
///
/// `rule` is for machines, `reason` for the caseworker (what rule, which
/// article, what to do next), `rule_set` for the auditor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason} [{rule}, rule set {rule_set}]")]
pub struct Violation {
    /// The rule that refused.
    pub rule: Rule,
    /// The rule set and version that was applied.
    pub rule_set: RuleSetRef,
    /// The text a back-office user sees.
    pub reason: String,
}

impl Violation {
    /// A violation of `rule` under `rule_set`, explained by `reason`.
    pub fn new(rule: Rule, rule_set: &RuleSetRef, reason: impl Into<String>) -> Self {
        Self {
            rule,
            rule_set: rule_set.clone(),
            reason: reason.into(),
        }
    }
}

/// The basis a permitted disclosure relied on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Relied {
    /// A consent in force, named by its `ConsentGranted` event id.
    Consent(EventId),
    /// A legal basis the sender's kind may invoke, with a justification.
    Legal(LegalBasis),
    /// A legal basis overriding the person's refusal of disclosure
    /// (vital interests, where the rule set allows it).
    LegalOverridingRefusal(LegalBasis),
}

/// The answer to "may this disclosure happen?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Allowed, relying on `basis`, under `rule_set`.
    Allow {
        /// The basis relied on.
        basis: Relied,
        /// The rule set and version applied.
        rule_set: RuleSetRef,
    },
    /// Refused, with the reason.
    Deny(Violation),
}

impl Decision {
    /// Whether the disclosure is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The rule set the decision applied, whichever way it went.
    pub fn rule_set(&self) -> &RuleSetRef {
        match self {
            Decision::Allow { rule_set, .. } => rule_set,
            Decision::Deny(v) => &v.rule_set,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_an_area() {
        let mut seen = std::collections::HashSet::new();
        for r in Rule::ALL {
            let c = r.code();
            assert!(seen.insert(c), "duplicate {c}");
            let (area, rule) = c.split_once('.').expect("area.rule");
            for part in [area, rule] {
                assert!(
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{c}"
                );
            }
        }
    }
}
