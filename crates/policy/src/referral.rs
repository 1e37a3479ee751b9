//! Referrals: a service request from one agency to another; custody unchanged.
//!
//! States follow FHIR Task: requested → received → accepted | rejected →
//! in progress → completed | failed, with accepted (or rejected) also
//! reachable directly from requested, and cancelled by the requester before
//! completion. A referral is overdue when it is still unanswered (requested
//! or received) at its answer deadline, fixed when it was requested from the
//! rule set it was requested under.

use serde::Serialize;
use waymark_types::{EventId, Purpose, Timestamp};

use crate::event::{Body, Party};
use crate::state::{CaseState, Cx};
use crate::violation::{Rule, Violation};
use crate::vocab::{Refused, Service, ServiceReason};

/// Where a referral stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReferralStatus {
    /// Sent, not yet taken in.
    Requested,
    /// Taken in by the performer, being evaluated.
    Received,
    /// Accepted by the performer.
    Accepted,
    /// Declined by the performer.
    Rejected(ServiceReason),
    /// Service delivery has started.
    InProgress,
    /// The service was delivered.
    Completed,
    /// The service could not be delivered.
    Failed(ServiceReason),
    /// Withdrawn by the requester.
    Cancelled,
}

impl ReferralStatus {
    /// A short word for messages.
    pub fn label(self) -> &'static str {
        match self {
            ReferralStatus::Requested => "requested",
            ReferralStatus::Received => "received",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::Rejected(_) => "rejected",
            ReferralStatus::InProgress => "in progress",
            ReferralStatus::Completed => "completed",
            ReferralStatus::Failed(_) => "failed",
            ReferralStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no further step is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReferralStatus::Rejected(_)
                | ReferralStatus::Completed
                | ReferralStatus::Failed(_)
                | ReferralStatus::Cancelled
        )
    }

    /// Whether the performer has not answered yet.
    pub fn is_unanswered(self) -> bool {
        matches!(self, ReferralStatus::Requested | ReferralStatus::Received)
    }
}

/// One referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referral {
    /// The requesting agency.
    pub requester: Party,
    /// The agency asked to perform the service.
    pub performer: Party,
    /// The service asked for.
    pub service: Service,
    /// The purpose the referral shares data for.
    pub purpose: Purpose,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// When an unanswered referral becomes overdue.
    pub answer_due: Timestamp,
    /// Where it stands.
    pub status: ReferralStatus,
}

/// A referral past its answer deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overdue {
    /// The referral id.
    pub referral: EventId,
    /// Who is expected to answer.
    pub performer: Party,
    /// When the answer was due.
    pub due: Timestamp,
}

impl CaseState {
    pub(crate) fn on_referral_requested(
        &mut self,
        cx: &Cx<'_>,
        service: Service,
    ) -> Result<(), Violation> {
        let e = cx.e;
        let (Some(to), Some(d)) = (&e.recipient, &e.disclosure) else {
            return Err(cx.deny(
                Rule::RecipientMissing,
                "A referral must be sent to the agency asked to provide the service, with the purpose \
                 and basis of the data it shares.",
            ));
        };
        if let Some(r) = self.refusals.iter().find(|r| {
            r.refusal.of == Refused::Referral
                && r.at <= e.at
                && r.refusal.recipients.covers(&to.id, to.kind)
                && r.refusal.covers_purpose(d.purpose)
                && !self.lifted_by_basis(r, &d.basis)
        }) {
            return Err(cx.deny(
                Rule::ReferralRefused,
                format!(
                    "The person refused referral to {} (recorded by {} at {}). Do not refer; \
                     if the person changes their mind, record their new consent to this referral first.",
                    to.id, r.by, r.at
                ),
            ));
        }
        self.referrals.insert(
            e.id,
            Referral {
                requester: e.sender.clone(),
                performer: to.clone(),
                service,
                purpose: d.purpose,
                requested_at: e.at,
                answer_due: e
                    .at
                    .plus_days(i64::from(cx.rules.params().referral_response_days)),
                status: ReferralStatus::Requested,
            },
        );
        Ok(())
    }

    pub(crate) fn on_referral_step(&mut self, cx: &Cx<'_>) -> Result<(), Violation> {
        use ReferralStatus as S;
        let e = cx.e;
        // (referral, performer's step?, allowed from, to, verb)
        let (id, by_performer, from, to, verb): (EventId, bool, &[S], S, &str) = match &e.body {
            Body::ReferralReceived { referral } => (
                *referral,
                true,
                &[S::Requested],
                S::Received,
                "mark as received",
            ),
            Body::ReferralAccepted { referral } => (
                *referral,
                true,
                &[S::Requested, S::Received],
                S::Accepted,
                "accept",
            ),
            Body::ReferralRejected { referral, reason } => {
                crate::guards::check_reason(cx, *reason, "decline a referral")?;
                (
                    *referral,
                    true,
                    &[S::Requested, S::Received],
                    S::Rejected(*reason),
                    "reject",
                )
            }
            Body::ReferralStarted { referral } => {
                (*referral, true, &[S::Accepted], S::InProgress, "start")
            }
            Body::ReferralCompleted { referral } => {
                (*referral, true, &[S::InProgress], S::Completed, "complete")
            }
            Body::ReferralFailed { referral, reason } => {
                crate::guards::check_reason(cx, *reason, "end a service")?;
                (
                    *referral,
                    true,
                    &[S::Accepted, S::InProgress],
                    S::Failed(*reason),
                    "record as failed",
                )
            }
            Body::ReferralCancelled { referral } => (
                *referral,
                false,
                &[S::Requested, S::Received, S::Accepted, S::InProgress],
                S::Cancelled,
                "cancel",
            ),
            _ => return Ok(()),
        };
        let Some(r) = self.referrals.get(&id) else {
            return Err(cx.deny(
                Rule::ReferralUnknown,
                format!(
                    "No referral {id} is known for this case. Check the referral id; the requesting \
                     agency's referral must arrive before it can be answered."
                ),
            ));
        };
        let (who, rule, role) = if by_performer {
            (
                &r.performer,
                Rule::NotPerformer,
                "asked to provide the service",
            )
        } else {
            (&r.requester, Rule::NotRequester, "that made the referral")
        };
        if who.id != e.sender.id {
            return Err(cx.deny(
                rule,
                format!(
                    "Only {}, the agency {role}, may {verb} referral {id}.",
                    who.id
                ),
            ));
        }
        if !from.contains(&r.status) {
            let allowed: Vec<&str> = from.iter().map(|s| s.label()).collect();
            return Err(cx.deny(
                Rule::ReferralInvalidTransition,
                format!(
                    "Referral {id} is {}; you can {verb} it only while it is {}.",
                    r.status.label(),
                    allowed.join(" or ")
                ),
            ));
        }
        if let Some(r) = self.referrals.get_mut(&id) {
            r.status = to;
        }
        Ok(())
    }

    /// Referrals still unanswered at `now` although their answer was due, in id order.
    pub fn overdue_referrals(&self, now: Timestamp) -> Vec<Overdue> {
        self.referrals
            .iter()
            .filter(|(_, r)| r.status.is_unanswered() && now >= r.answer_due)
            .map(|(id, r)| Overdue {
                referral: *id,
                performer: r.performer.clone(),
                due: r.answer_due,
            })
            .collect()
    }
}
