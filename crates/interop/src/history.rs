//! The things a case's events are about, folded from its signed events:
//! referrals, handovers and consents, each with its state and the events
//! that made it. Pure: no I/O, no clock; the same events always give the
//! same history.
//!
//! The states are those of the policy core's state machines
//! (`waymark_policy::ReferralStatus`, `OfferStatus`, consent withdrawal),
//! kept here with the detail the exports need (reason codes, free-text
//! details, times), which the policy model drops. A final state is final:
//! a later answer to a closed referral or offer is listed with its events
//! but changes nothing (the auditor reports it). An answer whose request is
//! not in the exports is an orphan: nothing is made up for it.

use std::collections::{BTreeMap, BTreeSet};

use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1::{self as pb, event::Body};
use waymark_types::Timestamp;

use crate::source::{CaseRecord, SignedEvent};

/// Where a referral stands (`waymark_policy::ReferralStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralState {
    /// Sent, not yet taken in.
    Requested,
    /// Taken in by the performer, being evaluated.
    Received,
    /// Accepted by the performer.
    Accepted,
    /// Declined by the performer.
    Rejected,
    /// Service delivery started.
    InProgress,
    /// Service delivered.
    Completed,
    /// Service could not be delivered.
    Failed,
    /// Withdrawn by the requester.
    Cancelled,
}

impl ReferralState {
    fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Completed | Self::Failed | Self::Cancelled
        )
    }
}

/// How a handover offer stands (`waymark_policy::OfferStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverState {
    /// Waiting for an answer.
    Offered,
    /// Accepted: the offeree became custodian.
    Accepted,
    /// Declined by the offeree.
    Rejected,
    /// Withdrawn by the custodian.
    Cancelled,
    /// Recorded as expired unanswered.
    Expired,
}

/// Why a referral or handover ended other than as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The `DeclineReason` wire number, when the event gives one.
    pub code: Option<i32>,
    /// The free-text detail (no personal data by protocol), possibly empty.
    pub detail: String,
}

/// One referral.
#[derive(Debug, Clone)]
pub struct Referral<'a> {
    /// The `referral_requested` event (its id is the referral's).
    pub request: &'a SignedEvent,
    /// Its body.
    pub body: &'a pb::ReferralRequested,
    /// The state after every event.
    pub state: ReferralState,
    /// Why it was rejected, failed or cancelled.
    pub reason: Option<Reason>,
    /// When delivery started.
    pub started: Option<Timestamp>,
    /// When it reached a final state.
    pub ended: Option<Timestamp>,
    /// Every event about it, the request first.
    pub events: Vec<&'a SignedEvent>,
}

/// One handover.
#[derive(Debug, Clone)]
pub struct Handover<'a> {
    /// The `handover_offered` event (its id is the handover's).
    pub offer: &'a SignedEvent,
    /// Its body.
    pub body: &'a pb::HandoverOffered,
    /// The state after every event.
    pub state: HandoverState,
    /// Why it was rejected.
    pub reason: Option<Reason>,
    /// When it left the offered state.
    pub resolved: Option<Timestamp>,
    /// Every event about it, the offer first.
    pub events: Vec<&'a SignedEvent>,
}

/// A consent withdrawal.
#[derive(Debug, Clone)]
pub struct Withdrawal<'a> {
    /// The `consent_withdrawn` event.
    pub event: &'a SignedEvent,
    /// When it takes effect.
    pub effective_at: Timestamp,
}

/// One consent.
#[derive(Debug, Clone)]
pub struct Consent<'a> {
    /// The `consent_granted` event (its id is the consent's).
    pub grant: &'a SignedEvent,
    /// Its body.
    pub body: &'a pb::ConsentGranted,
    /// The first withdrawal, if any.
    pub withdrawal: Option<Withdrawal<'a>>,
    /// Agencies that acknowledged the withdrawal.
    pub acknowledged_by: BTreeSet<String>,
    /// Every event about it, the grant first.
    pub events: Vec<&'a SignedEvent>,
}

/// What a case's events are about.
#[derive(Debug, Clone, Default)]
pub struct History<'a> {
    /// Referrals by id.
    pub referrals: BTreeMap<String, Referral<'a>>,
    /// Handovers by id.
    pub handovers: BTreeMap<String, Handover<'a>>,
    /// Consents by id.
    pub consents: BTreeMap<String, Consent<'a>>,
    /// Events answering a request, offer or consent that is not in the
    /// exports, with what they refer to.
    pub orphans: Vec<(&'a SignedEvent, String)>,
}

fn ref_id(r: Option<&pb::EventRef>) -> String {
    r.map(|r| r.event_id.clone()).unwrap_or_default()
}

impl<'a> History<'a> {
    /// Folds the events of `record` (already in order). Requests, offers
    /// and grants are taken first, so an answer stamped by a clock behind
    /// the requester's still finds its request.
    pub fn of(record: &'a CaseRecord) -> Self {
        let mut h = History::default();
        for e in &record.events {
            h.create(e);
        }
        for e in &record.events {
            h.apply(e);
        }
        h
    }

    fn create(&mut self, e: &'a SignedEvent) {
        let Some(body) = &e.event.body else { return };
        match body {
            Body::ReferralRequested(b) => {
                self.referrals
                    .entry(e.event.event_id.clone())
                    .or_insert(Referral {
                        request: e,
                        body: b,
                        state: ReferralState::Requested,
                        reason: None,
                        started: None,
                        ended: None,
                        events: vec![e],
                    });
            }
            Body::HandoverOffered(b) => {
                self.handovers
                    .entry(e.event.event_id.clone())
                    .or_insert(Handover {
                        offer: e,
                        body: b,
                        state: HandoverState::Offered,
                        reason: None,
                        resolved: None,
                        events: vec![e],
                    });
            }
            Body::ConsentGranted(b) => {
                self.consents
                    .entry(e.event.event_id.clone())
                    .or_insert(Consent {
                        grant: e,
                        body: b,
                        withdrawal: None,
                        acknowledged_by: BTreeSet::new(),
                        events: vec![e],
                    });
            }
            _ => {}
        }
    }

    fn apply(&mut self, e: &'a SignedEvent) {
        let Some(body) = &e.event.body else { return };
        let at = e.occurred_at;
        use ReferralState as R;
        match body {
            Body::ReferralReceived(b) => {
                self.referral(e, ref_id(b.request.as_ref()), R::Received, None)
            }
            Body::ReferralAccepted(b) => {
                self.referral(e, ref_id(b.request.as_ref()), R::Accepted, None)
            }
            Body::ReferralStarted(b) => {
                self.referral(e, ref_id(b.request.as_ref()), R::InProgress, None)
            }
            Body::ReferralCompleted(b) => {
                self.referral(e, ref_id(b.request.as_ref()), R::Completed, None);
            }
            Body::ReferralRejected(b) => {
                let reason = Reason {
                    code: Some(b.reason),
                    detail: b.detail.clone(),
                };
                self.referral(e, ref_id(b.request.as_ref()), R::Rejected, Some(reason));
            }
            Body::ReferralFailed(b) => {
                let reason = Reason {
                    code: Some(b.reason),
                    detail: b.detail.clone(),
                };
                self.referral(e, ref_id(b.request.as_ref()), R::Failed, Some(reason));
            }
            Body::ReferralCancelled(b) => {
                let reason = Reason {
                    code: None,
                    detail: b.detail.clone(),
                };
                self.referral(e, ref_id(b.request.as_ref()), R::Cancelled, Some(reason));
            }
            Body::HandoverAccepted(b) => {
                self.handover(e, ref_id(b.offer.as_ref()), HandoverState::Accepted, None);
            }
            Body::HandoverRejected(b) => {
                let reason = Reason {
                    code: Some(b.reason),
                    detail: b.detail.clone(),
                };
                self.handover(
                    e,
                    ref_id(b.offer.as_ref()),
                    HandoverState::Rejected,
                    Some(reason),
                );
            }
            Body::HandoverCancelled(b) => {
                self.handover(e, ref_id(b.offer.as_ref()), HandoverState::Cancelled, None);
            }
            Body::HandoverExpired(b) => {
                self.handover(e, ref_id(b.offer.as_ref()), HandoverState::Expired, None);
            }
            Body::ConsentWithdrawn(b) => {
                let Some(c) = self.consents.get_mut(&b.consent_id) else {
                    self.orphans.push((e, b.consent_id.clone()));
                    return;
                };
                c.events.push(e);
                if c.withdrawal.is_none() {
                    let effective_at = b
                        .effective_at
                        .as_ref()
                        .and_then(timestamp_from_proto)
                        .unwrap_or(at);
                    c.withdrawal = Some(Withdrawal {
                        event: e,
                        effective_at,
                    });
                }
            }
            Body::WithdrawalAcknowledged(b) => {
                let Some(c) = self.consents.get_mut(&b.consent_id) else {
                    self.orphans.push((e, b.consent_id.clone()));
                    return;
                };
                c.events.push(e);
                c.acknowledged_by.insert(e.event.sender_id.clone());
            }
            _ => {}
        }
    }

    fn referral(
        &mut self,
        e: &'a SignedEvent,
        id: String,
        to: ReferralState,
        reason: Option<Reason>,
    ) {
        let Some(r) = self.referrals.get_mut(&id) else {
            self.orphans.push((e, id));
            return;
        };
        r.events.push(e);
        if r.state.is_final() {
            return;
        }
        r.state = to;
        if to == ReferralState::InProgress {
            r.started = Some(e.occurred_at);
        }
        if to.is_final() {
            r.ended = Some(e.occurred_at);
            r.reason = reason;
        }
    }

    fn handover(
        &mut self,
        e: &'a SignedEvent,
        id: String,
        to: HandoverState,
        reason: Option<Reason>,
    ) {
        let Some(h) = self.handovers.get_mut(&id) else {
            self.orphans.push((e, id));
            return;
        };
        h.events.push(e);
        if h.state != HandoverState::Offered {
            return;
        }
        h.state = to;
        h.resolved = Some(e.occurred_at);
        h.reason = reason;
    }
}
