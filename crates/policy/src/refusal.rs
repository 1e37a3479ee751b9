//! Refusals: the person's "no" to assistance, referral or disclosure.
//!
//! A refusal applies from the time it is recorded to every covered recipient:
//! - refusal of **disclosure** blocks every disclosure to them;
//! - refusal of **referral** blocks referral requests to them;
//! - refusal of **assistance** blocks referrals and disclosures for
//!   assistance purposes (see [`crate::is_assistance_purpose`]) to them.
//!
//! The person may change their mind: a consent recorded *after* the refusal
//! that covers the disclosure lifts the refusal for disclosures relying on
//! that consent. A legal basis never lifts a refusal, with one exception set
//! per rule set: where `vital_interests_override_refusal` is on (the `bg`
//! rule set, following the Bulgarian NRM SOP: "life and safety risks must be
//! shared"), a disclosure relying on vital interests may go ahead despite a
//! refusal of *disclosure*; the decision then says so
//! ([`crate::Relied::LegalOverridingRefusal`]) for the auditor. Refusals of
//! assistance or referral are never overridden (assistance is consensual,
//! CETS 197 Art. 12(7)).

use serde::Serialize;
use waymark_types::{AgencyId, EventId, LegalBasis, Timestamp};

use crate::disclosure::DisclosureQuery;
use crate::event::DisclosureBasis;
use crate::guards::is_assistance_purpose;
use crate::rules::RuleSet;
use crate::state::{CaseState, Cx};
use crate::violation::{Rule, Violation};
use crate::vocab::{Refusal, Refused};

/// One recorded refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalRecord {
    /// The refusal event.
    pub event: EventId,
    /// The agency that recorded it.
    pub by: AgencyId,
    /// When.
    pub at: Timestamp,
    /// What was refused, towards whom.
    pub refusal: Refusal,
}

/// What a refusal check concluded for a disclosure.
pub(crate) enum RefusalCheck {
    /// No refusal applies.
    Clear,
    /// A refusal applies but the vital-interests override lets it through.
    Overridden,
}

impl CaseState {
    pub(crate) fn on_refusal(&mut self, cx: &Cx<'_>, r: &Refusal) {
        self.refusals.push(RefusalRecord {
            event: cx.e.id,
            by: cx.e.sender.id.clone(),
            at: cx.e.at,
            refusal: r.clone(),
        });
    }

    /// Whether `basis` is a consent recorded after refusal `r` (the person
    /// changed their mind).
    pub(crate) fn lifted_by_basis(&self, r: &RefusalRecord, basis: &DisclosureBasis) -> bool {
        match basis {
            DisclosureBasis::Consent(id) => {
                self.consents.get(id).is_some_and(|c| c.recorded_at > r.at)
            }
            DisclosureBasis::Legal { .. } => false,
        }
    }

    /// Checks the refusals that cover disclosure `q` relying on `basis`.
    pub(crate) fn check_refusals(
        &self,
        q: &DisclosureQuery,
        basis: &DisclosureBasis,
        rules: &RuleSet,
    ) -> Result<RefusalCheck, Violation> {
        let mut result = RefusalCheck::Clear;
        for r in &self.refusals {
            let blocks = r.at <= q.at
                && r.refusal.recipients.covers(&q.to, q.to_kind)
                && r.refusal.covers_purpose(q.purpose)
                && match r.refusal.of {
                    Refused::Disclosure => true,
                    Refused::Assistance => is_assistance_purpose(q.purpose),
                    Refused::Referral => false,
                };
            if !blocks || self.lifted_by_basis(r, basis) {
                continue;
            }
            let vital = matches!(
                basis,
                DisclosureBasis::Legal {
                    basis: LegalBasis::VitalInterests,
                    ..
                }
            );
            if r.refusal.of == Refused::Disclosure {
                if vital && rules.params().vital_interests_override_refusal {
                    result = RefusalCheck::Overridden;
                    continue;
                }
                let hint = if rules.params().vital_interests_override_refusal {
                    " Only an immediate risk to life or safety (vital interests, with a justification) \
                     may still be shared."
                } else {
                    ""
                };
                return Err(Violation::new(
                    Rule::DisclosureRefused,
                    rules.reference(),
                    format!(
                        "The person refused to have their data shared with {} (recorded by {} at {}). \
                         Do not share.{hint} If the person changes their mind, record their new consent first.",
                        q.to, r.by, r.at
                    ),
                ));
            }
            return Err(Violation::new(
                Rule::AssistanceRefused,
                rules.reference(),
                format!(
                    "The person refused assistance (recorded by {} at {}), so nothing may be shared with {} \
                     for the purpose '{}'. Assistance is given only with the person's agreement \
                     (CETS 197 Art. 12(7)); if they change their mind, record their new consent first.",
                    r.by, r.at, q.to, q.purpose
                ),
            ));
        }
        Ok(result)
    }
}
