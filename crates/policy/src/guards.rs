//! Treaty guards: identification, reflection, return and the separation of
//! assistance from cooperation with police.
//!
//! - CETS 197 Art. 13: a recovery and reflection period of at least the rule
//!   set's minimum (never below 30 days), counted from its start and from a
//!   positive reasonable-grounds decision. The protection applies even if no
//!   period was recorded: a positive decision at t protects until t + minimum.
//! - Art. 10(2) and 13: a return may be scheduled only once identification is
//!   concluded and for a departure at or after the end of the protection,
//!   unless the person asked for return themselves.
//! - Art. 16(7): a child's (or presumed child's) return needs a recorded
//!   assessment finding it in the child's best interests; the person's own
//!   request does not replace it.
//! - Art. 12(6), Directive 2011/36/EU Art. 11(3): assistance never depends on
//!   cooperation with police: no proceedings data in assistance disclosures,
//!   and "no cooperation with police" is refused as a reason to decline,
//!   discharge or end a service or decline custody.
//!
//! Missing facts fail closed: a return desk whose journal does not show the
//! identification decision is refused, and the text says which event to ask
//! for.

use serde::Serialize;
use waymark_types::{Purpose, Timestamp};

use crate::event::Body;
use crate::state::{CaseState, Cx};
use crate::violation::{Rule, Violation};
use crate::vocab::ServiceReason;

/// Whether `p` is an assistance purpose, for which proceedings data may not be
/// shared and which a refusal of assistance blocks: assistance,
/// accommodation, reintegration and monitoring. Protection, return,
/// identification and criminal proceedings are not.
pub fn is_assistance_purpose(p: Purpose) -> bool {
    matches!(
        p,
        Purpose::Assistance | Purpose::Accommodation | Purpose::Reintegration | Purpose::Monitoring
    )
}

/// A dated yes/no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decided {
    /// When.
    pub at: Timestamp,
    /// The answer.
    pub positive: bool,
}

/// The latest return risk assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    /// When.
    pub at: Timestamp,
    /// Whether return was found safe and in a child's best interests.
    pub best_interests_ok: bool,
    /// Whether the person was assessed as a child.
    pub child: bool,
}

/// The identification, reflection and return facts of a case (latest of each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pathway {
    /// The reasonable-grounds decision.
    pub reasonable_grounds: Option<Decided>,
    /// Conclusive identification (positive: identified as a victim).
    pub identification: Option<Decided>,
    /// The recorded reflection period: start and end (exclusive).
    pub reflection: Option<(Timestamp, Timestamp)>,
    /// Whether the person asked for return themselves (latest request).
    pub return_requested_by_person: Option<bool>,
    /// The latest return risk assessment.
    pub risk: Option<RiskAssessment>,
    /// The scheduled departure.
    pub return_scheduled: Option<Timestamp>,
}

/// Refuses `reason` where it would make assistance depend on cooperation with police.
pub(crate) fn check_reason(
    cx: &Cx<'_>,
    reason: ServiceReason,
    action: &str,
) -> Result<(), Violation> {
    if reason != ServiceReason::NoCooperationWithPolice {
        return Ok(());
    }
    Err(cx.deny(
        Rule::Art12NotConditional,
        format!(
            "You cannot {action} because the person does not cooperate with police: assistance must never \
             depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)). \
             Choose the actual reason, or continue the support."
        ),
    ))
}

impl CaseState {
    /// The end of the reflection protection under `min_days`, if any applies.
    fn protected_until(&self, cx: &Cx<'_>) -> Option<Timestamp> {
        let from_grounds = self
            .pathway
            .reasonable_grounds
            .filter(|d| d.positive)
            .map(|d| cx.rules.reflection_end_from(d.at));
        let recorded = self.pathway.reflection.map(|(_, end)| end);
        from_grounds.max(recorded)
    }

    pub(crate) fn on_pathway(&mut self, cx: &Cx<'_>) -> Result<(), Violation> {
        let e = cx.e;
        let p = &mut self.pathway;
        match &e.body {
            Body::ReasonableGroundsDecided { positive } => {
                p.reasonable_grounds = Some(Decided {
                    at: e.at,
                    positive: *positive,
                });
            }
            Body::IdentificationConcluded { victim } => {
                p.identification = Some(Decided {
                    at: e.at,
                    positive: *victim,
                });
            }
            Body::ReflectionPeriodStarted { starts_at, ends_at } => {
                let min = cx.rules.params().reflection_min_days;
                let need = cx.rules.reflection_end_from(*starts_at).max(
                    p.reasonable_grounds
                        .filter(|d| d.positive)
                        .map_or(Timestamp(i64::MIN), |d| cx.rules.reflection_end_from(d.at)),
                );
                if *ends_at < need {
                    return Err(cx.deny(
                        Rule::Art13ReflectionTooShort,
                        format!(
                            "The recovery and reflection period must last at least {min} days from its start \
                             and from the reasonable-grounds decision (CETS 197 Art. 13, rule set {}). \
                             Set its end to {need} or later.",
                            cx.rules.reference()
                        ),
                    ));
                }
                p.reflection = Some((*starts_at, *ends_at));
            }
            Body::ReturnRequested {
                requested_by_person,
            } => p.return_requested_by_person = Some(*requested_by_person),
            Body::ReturnRiskAssessed {
                best_interests_ok,
                child,
            } => {
                p.risk = Some(RiskAssessment {
                    at: e.at,
                    best_interests_ok: *best_interests_ok,
                    child: *child,
                });
            }
            Body::ReturnScheduled { departure_at } => {
                self.check_return(cx, *departure_at)?;
                self.pathway.return_scheduled = Some(*departure_at);
            }
            Body::DepartureRecorded if p.return_scheduled.is_none() => {
                return Err(cx.deny(
                    Rule::ReturnNotScheduled,
                    "No return has been scheduled for this case, so a departure cannot be recorded. \
                     Schedule the return first; the scheduling checks identification, reflection and \
                     risk assessment.",
                ));
            }
            Body::Discharged { reason } => check_reason(cx, *reason, "end the stay")?,
            _ => {}
        }
        Ok(())
    }

    fn check_return(&self, cx: &Cx<'_>, departure_at: Timestamp) -> Result<(), Violation> {
        let p = &self.pathway;
        let ok = p.risk.is_some_and(|r| r.best_interests_ok);
        // An agency that has not seen the case's opening (it learned of the
        // case through a referral or handover) does not know the person's
        // age, so it presumes a child (CETS 197 Art. 10(3)): fail closed.
        let age_unknown = self.opened.is_none();
        if (self.presumed_child() || age_unknown) && !ok {
            let who = if age_unknown && !self.presumed_child() {
                "The person's age is unknown to this agency (it has not seen the case's opening), so they are presumed a child (CETS 197 Art. 10(3))"
            } else {
                "The person is a child or presumed a child"
            };
            let found = match p.risk {
                Some(r) => format!(
                    "the latest assessment ({}) found return not in the child's best interests",
                    r.at
                ),
                None => "no best-interests risk assessment is recorded".to_owned(),
            };
            return Err(cx.deny(
                Rule::Art16ChildBestInterests,
                format!(
                    "{who}, and {found}. A child may not be returned unless \
                     a risk and security assessment finds return in the child's best interests \
                     (CETS 197 Art. 16(7)). Record a favourable assessment first, or plan an alternative."
                ),
            ));
        }
        if !self.presumed_child() && cx.rules.params().adult_return_requires_risk_assessment && !ok
        {
            return Err(cx.deny(
                Rule::ReturnRiskAssessmentRequired,
                format!(
                    "Under rule set {} a return may be scheduled only after a return risk assessment that \
                     finds it safe. Record the assessment first.",
                    cx.rules.reference()
                ),
            ));
        }
        if p.return_requested_by_person == Some(true) {
            return Ok(());
        }
        if p.identification.is_none() {
            return Err(cx.deny(
                Rule::Art10IdentificationPending,
                "Identification has not been concluded, as far as this journal shows, so no return may be \
                 scheduled (CETS 197 Art. 10(2)) unless the person asks for return themselves. Wait for the \
                 police's identification decision (identification_concluded), or record the person's own \
                 request for return.",
            ));
        }
        if let Some(until) = self.protected_until(cx)
            && departure_at < until
        {
            return Err(cx.deny(
                Rule::Art13ReturnInReflection,
                format!(
                    "The recovery and reflection period runs until {until}; no return may take place before \
                     then (CETS 197 Art. 13) unless the person asks for it. Choose a departure on or after \
                     {until}, or record the person's own request for return."
                ),
            ));
        }
        Ok(())
    }
}
