//! Consents: grants with a scope, withdrawals that are never retroactive, and
//! the acknowledgements a withdrawal requires.
//!
//! A consent is in force from the later of its `valid_from` and the time it
//! was recorded, until the earlier of its `valid_until` and its withdrawal's
//! `effective_at` (both exclusive). A withdrawal may be dated now or later,
//! never earlier than it is recorded. Disclosures made while the consent was
//! in force stay lawful; the withdrawal only stops new ones and asks every
//! agency that holds data under the consent to acknowledge it.

use std::collections::BTreeSet;

use serde::Serialize;
use waymark_types::{AgencyId, AgencyKind, DataCategory, EventId, Purpose, Timestamp};

use crate::event::Sending;
use crate::state::{CaseState, Cx};
use crate::violation::{Relied, Rule, Violation};
use crate::vocab::ConsentGrant;

/// A recorded withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawal {
    /// The withdrawal event.
    pub event: EventId,
    /// The agency that recorded it.
    pub by: AgencyId,
    /// When it was recorded.
    pub at: Timestamp,
    /// From when the consent no longer applies.
    pub effective_at: Timestamp,
}

/// One consent, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consent {
    /// The agency that obtained and recorded it.
    pub recorded_by: AgencyId,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// What it permits, how and from whom it was obtained.
    pub grant: ConsentGrant,
    /// Its withdrawal, if any.
    pub withdrawal: Option<Withdrawal>,
    /// Agencies that acknowledged the withdrawal.
    pub acknowledged_by: BTreeSet<AgencyId>,
}

impl Consent {
    /// The first instant the consent is in force.
    pub fn in_force_from(&self) -> Timestamp {
        self.grant.scope.valid_from.max(self.recorded_at)
    }

    /// Whether the consent covers this disclosure at `at`; otherwise the rule
    /// it fails and the caseworker's explanation.
    pub(crate) fn covers(
        &self,
        id: EventId,
        to: &AgencyId,
        to_kind: AgencyKind,
        purpose: Purpose,
        categories: &BTreeSet<DataCategory>,
        at: Timestamp,
    ) -> Result<(), (Rule, String)> {
        let s = &self.grant.scope;
        if at < self.in_force_from() {
            return Err((
                Rule::ConsentNotYetValid,
                format!(
                    "Consent {id} is in force only from {}. Wait until then, or record a new consent.",
                    self.in_force_from()
                ),
            ));
        }
        if let Some(w) = &self.withdrawal
            && at >= w.effective_at
        {
            return Err((
                Rule::ConsentWithdrawn,
                format!(
                    "The person withdrew consent {id} with effect from {} (recorded by {}). \
                     Do not share under it; a new consent or a legal basis is needed.",
                    w.effective_at, w.by
                ),
            ));
        }
        if let Some(until) = s.valid_until
            && at >= until
        {
            return Err((
                Rule::ConsentExpired,
                format!(
                    "Consent {id} expired at {until}. Ask the person whether they consent again."
                ),
            ));
        }
        if !s.recipients.iter().any(|r| r.covers(to, to_kind)) {
            return Err((
                Rule::ConsentRecipientOutOfScope,
                format!(
                    "Consent {id} does not cover sharing with {to} ({to_kind}). Ask the person whether \
                     they agree to share with this agency, and record that consent."
                ),
            ));
        }
        if !s.purposes.contains(&purpose) {
            return Err((
                Rule::ConsentPurposeOutOfScope,
                format!(
                    "Consent {id} does not cover the purpose '{purpose}'. Share only for the purposes \
                     the person agreed to, or ask for their consent to this purpose."
                ),
            ));
        }
        let missing: Vec<&str> = categories
            .iter()
            .filter(|c| !s.categories.contains(c))
            .map(|c| c.as_str())
            .collect();
        if !missing.is_empty() {
            return Err((
                Rule::ConsentCategoryOutOfScope,
                format!(
                    "Consent {id} does not cover these data categories: {}. Remove them from what \
                     you share, or ask the person for consent to share them.",
                    missing.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Who must acknowledge a withdrawal, and who has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalStatus {
    /// Agencies that hold data under the consent as far as this view knows:
    /// the agency that recorded it and every sender and recipient of a
    /// disclosure relying on it, except the agency that recorded the withdrawal.
    pub required: BTreeSet<AgencyId>,
    /// Agencies that acknowledged.
    pub acknowledged: BTreeSet<AgencyId>,
    /// Required agencies that have not acknowledged yet.
    pub outstanding: BTreeSet<AgencyId>,
}

impl CaseState {
    pub(crate) fn on_consent_granted(
        &mut self,
        cx: &Cx<'_>,
        g: &ConsentGrant,
    ) -> Result<(), Violation> {
        let e = cx.e;
        let s = &g.scope;
        if s.recipients.is_empty() || s.purposes.is_empty() || s.categories.is_empty() {
            return Err(cx.deny(
                Rule::ConsentEmptyScope,
                "A consent must name at least one recipient agency (or kind), one purpose and one \
                 data category. Record exactly what the person agreed to.",
            ));
        }
        let from = s.valid_from.max(e.at);
        if s.valid_until.is_some_and(|u| u <= from) {
            return Err(cx.deny(
                Rule::ConsentInvalidPeriod,
                format!(
                    "The consent would end before it starts (in force from {from}). Check the validity dates."
                ),
            ));
        }
        if self.presumed_child() && !g.given_by.involves_representative() {
            return Err(cx.deny(
                Rule::ConsentChildNeedsRepresentative,
                "The person is a child or presumed a child (CETS 197 Art. 10(3)-(4)): consent must be given \
                 by, or together with, their guardian or legal representative. Record who gave it.",
            ));
        }
        if let (Some(to), Sending::ConsentForward) =
            (&e.recipient, crate::event::sending(e.body.kind()))
            && !s.recipients.iter().any(|r| r.covers(&to.id, to.kind))
        {
            return Err(cx.deny(
                Rule::ConsentForwardOutOfScope,
                format!(
                    "This consent does not cover {}, so it cannot be sent there. Send it only to \
                     agencies the person agreed to share with.",
                    to.id
                ),
            ));
        }
        self.consents.insert(
            e.id,
            Consent {
                recorded_by: e.sender.id.clone(),
                recorded_at: e.at,
                grant: g.clone(),
                withdrawal: None,
                acknowledged_by: BTreeSet::new(),
            },
        );
        Ok(())
    }

    fn known_consent(&self, cx: &Cx<'_>, id: EventId) -> Result<&Consent, Violation> {
        self.consents.get(&id).ok_or_else(|| {
            cx.deny(
                Rule::ConsentUnknown,
                format!(
                    "Consent {id} is not known in this journal. The agency that recorded it must send \
                     the consent first."
                ),
            )
        })
    }

    pub(crate) fn on_consent_withdrawn(
        &mut self,
        cx: &Cx<'_>,
        id: EventId,
        effective_at: Timestamp,
    ) -> Result<(), Violation> {
        let e = cx.e;
        let c = self.known_consent(cx, id)?;
        if let Some(w) = &c.withdrawal {
            return Err(cx.deny(
                Rule::ConsentAlreadyWithdrawn,
                format!(
                    "Consent {id} was already withdrawn by {} at {}, effective {}. Nothing more to record.",
                    w.by, w.at, w.effective_at
                ),
            ));
        }
        if effective_at < e.at {
            return Err(cx.deny(
                Rule::WithdrawalRetroactive,
                format!(
                    "A withdrawal takes effect from when it is recorded, never earlier (GDPR Art. 7(3)): \
                     {effective_at} is before {}. Record it as effective now; sharing that already \
                     happened stays lawful.",
                    e.at
                ),
            ));
        }
        if let Some(c) = self.consents.get_mut(&id) {
            c.withdrawal = Some(Withdrawal {
                event: e.id,
                by: e.sender.id.clone(),
                at: e.at,
                effective_at,
            });
        }
        Ok(())
    }

    pub(crate) fn on_withdrawal_ack(&mut self, cx: &Cx<'_>, id: EventId) -> Result<(), Violation> {
        let c = self.known_consent(cx, id)?;
        if c.withdrawal.is_none() {
            return Err(cx.deny(
                Rule::ConsentNotWithdrawn,
                format!(
                    "Consent {id} has not been withdrawn in this journal, so there is nothing to acknowledge. \
                     The withdrawal must arrive first."
                ),
            ));
        }
        if let Some(c) = self.consents.get_mut(&id) {
            c.acknowledged_by.insert(cx.e.sender.id.clone());
        }
        Ok(())
    }

    /// Who must acknowledge the withdrawal of `consent`, who has and who has
    /// not, as far as this view knows. `None` if the consent is unknown or
    /// not withdrawn. A local view lists the agencies this agency exchanged
    /// data with under the consent; the auditor's merged view lists all.
    pub fn withdrawal_status(&self, consent: EventId) -> Option<WithdrawalStatus> {
        let c = self.consents.get(&consent)?;
        let w = c.withdrawal.as_ref()?;
        let mut required: BTreeSet<AgencyId> = BTreeSet::from([c.recorded_by.clone()]);
        for d in &self.disclosures {
            if d.basis == Relied::Consent(consent) {
                required.insert(d.from.id.clone());
                required.insert(d.to.id.clone());
            }
        }
        required.remove(&w.by);
        let outstanding = required.difference(&c.acknowledged_by).cloned().collect();
        Some(WithdrawalStatus {
            required,
            acknowledged: c.acknowledged_by.clone(),
            outstanding,
        })
    }
}
