//! Versioned rule sets: the numbers and lists a jurisdiction may set.
//!
//! A rule set is identified by `(id, version)`. Every event names the rule set
//! it was made under and every decision names the rule set it applied, so an
//! auditor replaying a journal years later applies the same version the agency
//! applied at the time, even after the jurisdiction has published a newer one.
//! A published version is never edited: a change is a new version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use waymark_types::{AgencyKind, LegalBasis, Timestamp};

/// The minimum recovery and reflection period of CETS 197 Art. 13(1), in days.
/// No rule set may go below it.
pub const CETS197_REFLECTION_MIN_DAYS: u32 = 30;

/// Names one version of one rule set, e.g. `coe-cets197@1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleSetRef {
    /// The rule set's id: lowercase letters, digits and `-`, e.g. `bg`.
    pub id: String,
    /// The version within that id, starting at 1.
    pub version: u32,
}

impl RuleSetRef {
    /// A reference to `id` at `version`.
    pub fn new(id: &str, version: u32) -> Self {
        Self {
            id: id.to_owned(),
            version,
        }
    }
}

impl fmt::Display for RuleSetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// A rule set could not be built because a value breaks a treaty floor or is
/// malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// The reflection period is shorter than CETS 197 Art. 13 allows.
    #[error(
        "rule set {rule_set}: reflection period of {days} days is below the 30-day minimum of CETS 197 Art. 13"
    )]
    ReflectionBelowTreatyMinimum {
        /// The rule set being built.
        rule_set: RuleSetRef,
        /// The rejected number of days.
        days: u32,
    },
    /// The id is not a lowercase token or the version is 0.
    #[error(
        "rule set {rule_set}: id must be lowercase letters, digits and '-', version at least 1"
    )]
    BadReference {
        /// The rejected reference.
        rule_set: RuleSetRef,
    },
    /// A deadline or lifetime is zero, which would make every action late.
    #[error("rule set {rule_set}: {field} must be at least 1")]
    ZeroDuration {
        /// The rule set being built.
        rule_set: RuleSetRef,
        /// The offending field.
        field: &'static str,
    },
    /// No agency kind may hold custody, so no case could ever be opened.
    #[error("rule set {rule_set}: at least one agency kind must be allowed to hold custody")]
    NoCustodianKind {
        /// The rule set being built.
        rule_set: RuleSetRef,
    },
}

/// The values of a rule set. Build one with [`RuleSet::new`], which enforces
/// the treaty floors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetParams {
    /// Which rule set and version this is.
    pub reference: RuleSetRef,
    /// Minimum recovery and reflection period in days (never below 30).
    pub reflection_min_days: u32,
    /// Days a referral may stay unanswered (requested or received) before it
    /// is reported overdue.
    pub referral_response_days: u32,
    /// Longest lifetime of a handover offer, in days.
    pub max_offer_lifetime_days: u32,
    /// Agency kinds that may hold custody of a case (open it, accept a handover).
    pub custodian_kinds: BTreeSet<AgencyKind>,
    /// Legal bases each agency kind may invoke for a disclosure without consent.
    pub legal_bases: BTreeMap<AgencyKind, BTreeSet<LegalBasis>>,
    /// Minimum length (in characters, after trimming) of a legal-basis justification.
    pub min_justification_chars: usize,
    /// Whether a disclosure resting on [`LegalBasis::VitalInterests`] may go
    /// ahead although the person refused disclosure.
    pub vital_interests_override_refusal: bool,
    /// Whether an adult's return also needs a favourable return risk assessment
    /// (a child's always does, CETS 197 Art. 16(7)).
    pub adult_return_requires_risk_assessment: bool,
}

/// One validated version of a jurisdiction's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSet {
    params: RuleSetParams,
}

impl RuleSet {
    /// Validates `params` into a rule set.
    ///
    /// # Errors
    /// Returns a [`RuleSetError`] if the reflection period is below 30 days, a
    /// duration is zero, no kind may hold custody, or the reference is malformed.
    pub fn new(params: RuleSetParams) -> Result<Self, RuleSetError> {
        let r = &params.reference;
        let id_ok = !r.id.is_empty()
            && r.id.len() <= 48
            && r.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok || r.version == 0 {
            return Err(RuleSetError::BadReference {
                rule_set: r.clone(),
            });
        }
        if params.reflection_min_days < CETS197_REFLECTION_MIN_DAYS {
            return Err(RuleSetError::ReflectionBelowTreatyMinimum {
                rule_set: r.clone(),
                days: params.reflection_min_days,
            });
        }
        for (field, v) in [
            ("referral_response_days", params.referral_response_days),
            ("max_offer_lifetime_days", params.max_offer_lifetime_days),
        ] {
            if v == 0 {
                return Err(RuleSetError::ZeroDuration {
                    rule_set: r.clone(),
                    field,
                });
            }
        }
        if params.custodian_kinds.is_empty() {
            return Err(RuleSetError::NoCustodianKind {
                rule_set: r.clone(),
            });
        }
        Ok(Self { params })
    }

    /// The baseline Council of Europe rule set `coe-cets197@1`: the treaty
    /// floors and conservative defaults. A capable person's refusal of
    /// disclosure is not overridden by vital interests here (GDPR Art. 9(2)(c)
    /// applies when the person cannot consent); jurisdictions decide otherwise.
    pub fn coe_cets197_v1() -> Self {
        Self::builtin(RuleSetParams {
            reference: RuleSetRef::new("coe-cets197", 1),
            reflection_min_days: CETS197_REFLECTION_MIN_DAYS,
            referral_response_days: 5,
            max_offer_lifetime_days: 14,
            custodian_kinds: AgencyKind::ALL.iter().copied().collect(),
            legal_bases: default_legal_bases(),
            min_justification_chars: 20,
            vital_interests_override_refusal: false,
            adult_return_requires_risk_assessment: false,
        })
    }

    /// The Bulgarian rule set `bg@1`. Differences from the baseline follow the
    /// Bulgarian NRM SOP: life and safety risks must be shared (vital interests
    /// overrides a refusal of disclosure) and return only after a reliable risk
    /// assessment, for adults too. The deadlines (2 days to answer a referral,
    /// 7-day handover offers) are configuration awaiting confirmation by the
    /// Bulgarian National Commission, not a statement of Bulgarian law.
    pub fn bg_v1() -> Self {
        Self::builtin(RuleSetParams {
            reference: RuleSetRef::new("bg", 1),
            reflection_min_days: CETS197_REFLECTION_MIN_DAYS,
            referral_response_days: 2,
            max_offer_lifetime_days: 7,
            custodian_kinds: AgencyKind::ALL.iter().copied().collect(),
            legal_bases: default_legal_bases(),
            min_justification_chars: 20,
            vital_interests_override_refusal: true,
            adult_return_requires_risk_assessment: true,
        })
    }

    fn builtin(params: RuleSetParams) -> Self {
        match Self::new(params) {
            Ok(rules) => rules,
            // The built-in values above are constants checked by a unit test.
            Err(e) => panic!("built-in rule set is invalid: {e}"),
        }
    }

    /// Which rule set and version this is.
    pub fn reference(&self) -> &RuleSetRef {
        &self.params.reference
    }

    /// All values of this rule set.
    pub fn params(&self) -> &RuleSetParams {
        &self.params
    }

    /// Whether an agency of `kind` may invoke `basis` under this rule set.
    pub fn may_invoke(&self, kind: AgencyKind, basis: LegalBasis) -> bool {
        self.params
            .legal_bases
            .get(&kind)
            .is_some_and(|s| s.contains(&basis))
    }

    /// Whether an agency of `kind` may hold custody under this rule set.
    pub fn may_hold_custody(&self, kind: AgencyKind) -> bool {
        self.params.custodian_kinds.contains(&kind)
    }

    /// The end of the minimum reflection period that starts at `from`.
    pub fn reflection_end_from(&self, from: Timestamp) -> Timestamp {
        from.plus_days(i64::from(self.params.reflection_min_days))
    }
}

/// Which legal bases each kind may invoke in the built-in rule sets. Public
/// authorities act on legal obligation and public task (GDPR 6(1)(c)/(e));
/// every kind may protect vital interests; only police pursue legal claims.
fn default_legal_bases() -> BTreeMap<AgencyKind, BTreeSet<LegalBasis>> {
    use AgencyKind as K;
    use LegalBasis as B;
    let mut m = BTreeMap::new();
    m.insert(
        K::Police,
        [
            B::LegalObligation,
            B::PublicTask,
            B::VitalInterests,
            B::LegalClaims,
            B::SubstantialPublicInterest,
        ]
        .into(),
    );
    m.insert(
        K::Labour,
        [B::LegalObligation, B::PublicTask, B::VitalInterests].into(),
    );
    m.insert(K::Shelter, [B::LegalObligation, B::VitalInterests].into());
    m.insert(
        K::ReturnDesk,
        [B::LegalObligation, B::VitalInterests].into(),
    );
    m.insert(K::Ngo, [B::VitalInterests].into());
    m
}

/// The registry of every rule-set version an agency or auditor knows. Replay
/// looks each event's rule set up here; an event naming an unknown version is
/// reported, never evaluated under a different version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSets {
    sets: BTreeMap<RuleSetRef, RuleSet>,
}

impl RuleSets {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in versions: `coe-cets197@1` and `bg@1`.
    pub fn builtin() -> Self {
        let mut s = Self::new();
        s.insert(RuleSet::coe_cets197_v1());
        s.insert(RuleSet::bg_v1());
        s
    }

    /// Adds a version; returns the one it replaced, if any (a published
    /// version should never be replaced: callers may treat `Some` as an error).
    pub fn insert(&mut self, rules: RuleSet) -> Option<RuleSet> {
        self.sets.insert(rules.reference().clone(), rules)
    }

    /// The rule set named by `reference`, if known.
    pub fn get(&self, reference: &RuleSetRef) -> Option<&RuleSet> {
        self.sets.get(reference)
    }

    /// The newest known version of `id`, for agencies choosing the rule set
    /// new events are made under.
    pub fn latest(&self, id: &str) -> Option<&RuleSet> {
        self.sets
            .iter()
            .filter(|(r, _)| r.id == id)
            .map(|(_, s)| s)
            .next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_registered() {
        let sets = RuleSets::builtin();
        assert_eq!(
            sets.latest("bg").map(|s| s.reference().to_string()),
            Some("bg@1".to_owned())
        );
        assert!(sets.get(&RuleSetRef::new("coe-cets197", 1)).is_some());
        assert!(sets.get(&RuleSetRef::new("coe-cets197", 2)).is_none());
    }

    #[test]
    fn reflection_below_thirty_days_is_refused() {
        let mut p = RuleSet::coe_cets197_v1().params().clone();
        p.reflection_min_days = 29;
        let err = RuleSet::new(p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule set coe-cets197@1: reflection period of 29 days is below the 30-day minimum of CETS 197 Art. 13"
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        let base = RuleSet::coe_cets197_v1().params().clone();
        let mut p = base.clone();
        p.reference = RuleSetRef::new("BG", 1);
        assert!(matches!(
            RuleSet::new(p),
            Err(RuleSetError::BadReference { .. })
        ));
        let mut p = base.clone();
        p.referral_response_days = 0;
        assert!(matches!(
            RuleSet::new(p),
            Err(RuleSetError::ZeroDuration { .. })
        ));
        let mut p = base;
        p.custodian_kinds.clear();
        assert!(matches!(
            RuleSet::new(p),
            Err(RuleSetError::NoCustodianKind { .. })
        ));
    }
}
