//! The disclosure decision: may agency A disclose categories C of case X to
//! agency B for purpose P at time t?
//!
//! Checks, in order: the case is not closed at t; proceedings data is not
//! shared for assistance (CETS 197 Art. 12(6)); no refusal blocks it; then
//! the basis: a consent in force at t covering B, P and every category in C,
//! or a legal basis A's kind may invoke under the rule set, with a written
//! justification. Only facts recorded in the state count: a consent this view
//! has not received is unknown and denies (the sender must send the consent
//! first). Every answer depends only on facts dated at or before t, so later
//! withdrawals, refusals and closures never change an earlier answer.

use std::collections::BTreeSet;

use serde::Serialize;
use waymark_types::{AgencyId, AgencyKind, DataCategory, EventId, EventKind, Purpose, Timestamp};

use crate::event::{DisclosureBasis, Party, Sending, sending};
use crate::guards::is_assistance_purpose;
use crate::refusal::RefusalCheck;
use crate::rules::{RuleSet, RuleSetRef};
use crate::state::{CaseState, Cx};
use crate::violation::{Decision, Relied, Rule, Violation};

/// A question to [`decide_disclosure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisclosureQuery {
    /// The disclosing agency.
    pub from: AgencyId,
    /// Its kind (decides which legal bases it may invoke).
    pub from_kind: AgencyKind,
    /// The receiving agency.
    pub to: AgencyId,
    /// Its kind.
    pub to_kind: AgencyKind,
    /// The categories to disclose (all must be covered).
    pub categories: BTreeSet<DataCategory>,
    /// The purpose.
    pub purpose: Purpose,
    /// When.
    pub at: Timestamp,
    /// The basis to rely on, or `None` to look for a consent in force.
    pub basis: Option<DisclosureBasis>,
}

/// One disclosure recorded in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisclosureRecord {
    /// The disclosing event.
    pub event: EventId,
    /// Its kind.
    pub kind: EventKind,
    /// Who disclosed.
    pub from: Party,
    /// To whom.
    pub to: Party,
    /// When.
    pub at: Timestamp,
    /// For what.
    pub purpose: Purpose,
    /// Which categories.
    pub categories: BTreeSet<DataCategory>,
    /// The basis relied on.
    pub basis: Relied,
    /// The rule set it was decided under.
    pub rule_set: RuleSetRef,
}

/// Answers whether the disclosure in `q` may happen under `rules`, given what
/// `state` knows. Pure: no clock, no I/O.
pub fn decide_disclosure(state: &CaseState, q: &DisclosureQuery, rules: &RuleSet) -> Decision {
    match state.decide(q, rules) {
        Ok(basis) => Decision::Allow {
            basis,
            rule_set: rules.reference().clone(),
        },
        Err(v) => Decision::Deny(v),
    }
}

impl CaseState {
    fn decide(&self, q: &DisclosureQuery, rules: &RuleSet) -> Result<Relied, Violation> {
        let deny = |rule, text: String| Violation::new(rule, rules.reference(), text);
        if let Some(c) = self.closed.as_ref().filter(|c| c.at <= q.at) {
            return Err(deny(
                Rule::CaseClosed,
                format!(
                    "Case {} was closed by {} at {}; no data may be shared after closure \
                     (acknowledgements and receipts excepted).",
                    self.case, c.by, c.at
                ),
            ));
        }
        if q.to == q.from {
            return Err(deny(
                Rule::RecipientIsSender,
                "An agency cannot disclose to itself.".to_owned(),
            ));
        }
        if is_assistance_purpose(q.purpose) && q.categories.contains(&DataCategory::Proceedings) {
            return Err(deny(
                Rule::Art12AssistanceSeparate,
                format!(
                    "Data about cooperation with police or criminal proceedings may not be shared for \
                     '{}': assistance must never depend on cooperation (CETS 197 Art. 12(6), \
                     Directive 2011/36/EU Art. 11(3)). Remove the proceedings category; if it must be \
                     shared, share it separately for criminal proceedings on its own basis.",
                    q.purpose
                ),
            ));
        }
        match &q.basis {
            Some(basis) => self.decide_with(q, basis, rules),
            None => self.find_consent(q, rules),
        }
    }

    fn decide_with(
        &self,
        q: &DisclosureQuery,
        basis: &DisclosureBasis,
        rules: &RuleSet,
    ) -> Result<Relied, Violation> {
        let deny = |rule, text: String| Violation::new(rule, rules.reference(), text);
        let refusal = self.check_refusals(q, basis, rules)?;
        match basis {
            DisclosureBasis::Consent(id) => {
                let Some(c) = self.consents.get(id) else {
                    return Err(deny(
                        Rule::ConsentUnknown,
                        format!(
                            "Consent {id} is not known in this journal. The agency that recorded it must \
                             send the consent before sharing data under it."
                        ),
                    ));
                };
                c.covers(*id, &q.to, q.to_kind, q.purpose, &q.categories, q.at)
                    .map_err(|(rule, text)| deny(rule, text))?;
                Ok(Relied::Consent(*id))
            }
            DisclosureBasis::Legal {
                basis: legal,
                justification,
            } => {
                if !rules.may_invoke(q.from_kind, *legal) {
                    return Err(deny(
                        Rule::LegalBasisNotPermitted,
                        format!(
                            "Under rule set {} a {} agency may not share data on the legal basis '{legal}'. \
                             Ask the person for consent, or ask an agency that holds that legal basis.",
                            rules.reference(),
                            q.from_kind
                        ),
                    ));
                }
                let min = rules.params().min_justification_chars;
                if justification.trim().chars().count() < min {
                    return Err(deny(
                        Rule::JustificationMissing,
                        format!(
                            "Sharing on the legal basis '{legal}' needs a written justification of at least \
                             {min} characters explaining why it applies (without personal data)."
                        ),
                    ));
                }
                Ok(match refusal {
                    RefusalCheck::Overridden => Relied::LegalOverridingRefusal(*legal),
                    RefusalCheck::Clear => Relied::Legal(*legal),
                })
            }
        }
    }

    /// With no basis named: the first consent (in id order) that allows it.
    fn find_consent(&self, q: &DisclosureQuery, rules: &RuleSet) -> Result<Relied, Violation> {
        let mut refused = None;
        for id in self.consents.keys() {
            match self.decide_with(q, &DisclosureBasis::Consent(*id), rules) {
                Ok(r) => return Ok(r),
                Err(v) if v.rule.code().starts_with("refusal.") => {
                    refused.get_or_insert(v);
                }
                Err(_) => {}
            }
        }
        Err(refused.unwrap_or_else(|| {
            Violation::new(
                Rule::NoBasis,
                rules.reference(),
                format!(
                    "No consent in force covers sharing {} with {} for '{}' at {}, and no legal basis was \
                     given. Ask the person for consent, or cite a legal basis with a justification.",
                    join(&q.categories),
                    q.to,
                    q.purpose,
                    q.at
                ),
            )
        }))
    }

    /// The disclosure check for an event sent to another agency: returns the
    /// basis relied on, `None` for notices and replies without a basis.
    pub(crate) fn check_sending(&self, cx: &Cx<'_>) -> Result<Option<Relied>, Violation> {
        let e = cx.e;
        let Some(to) = &e.recipient else {
            return Ok(None);
        };
        let kind = e.body.kind();
        let Some(d) = &e.disclosure else {
            return match sending(kind) {
                Sending::Disclosure => Err(cx.deny(
                    Rule::NoBasis,
                    format!(
                        "Sending {kind} to {} shares case data ({}) and needs a basis: cite a consent in \
                         force or a legal basis with a justification, and the purpose.",
                        to.id,
                        kind.category()
                    ),
                )),
                Sending::Reply | Sending::Notice | Sending::ConsentForward => Ok(None),
            };
        };
        let q = DisclosureQuery {
            from: e.sender.id.clone(),
            from_kind: e.sender.kind,
            to: to.id.clone(),
            to_kind: to.kind,
            categories: e.categories(),
            purpose: d.purpose,
            at: e.at,
            basis: Some(d.basis.clone()),
        };
        self.decide(&q, cx.rules).map(Some)
    }
}

fn join(c: &BTreeSet<DataCategory>) -> String {
    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}
