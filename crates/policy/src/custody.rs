//! Custody: one custodian per open case, moved only by a two-phase handover.
//!
//! offer (by the custodian, to a named agency, with an expiry) → accept |
//! reject | cancel | expire. An offer is open until answered, cancelled or its
//! expiry recorded; it can be accepted only strictly before `expires_at` (an
//! accept at the expiry instant is late). Expiry is never implied: a lapsed
//! offer blocks a new offer until `HandoverExpired` is recorded, so every
//! journal states explicitly how each offer ended.

use serde::Serialize;
use waymark_types::{AgencyId, EventId, Timestamp};

use crate::event::Party;
use crate::state::{CaseState, Cx, View};
use crate::violation::{Rule, Violation};
use crate::vocab::ServiceReason;

/// How a handover offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OfferStatus {
    /// Waiting for an answer.
    Pending,
    /// Accepted: the offeree became custodian.
    Accepted(Timestamp),
    /// Rejected by the offeree.
    Rejected(Timestamp, ServiceReason),
    /// Withdrawn by the offerer.
    Cancelled(Timestamp),
    /// Recorded as expired unanswered.
    Expired(Timestamp),
}

/// One handover offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// The offering custodian.
    pub from: AgencyId,
    /// The agency offered custody.
    pub to: Party,
    /// When it was offered.
    pub offered_at: Timestamp,
    /// When it lapses (exclusive).
    pub expires_at: Timestamp,
    /// How it stands.
    pub status: OfferStatus,
}

impl Offer {
    /// Whether the offer is still waiting for an answer (even if past expiry,
    /// until the expiry is recorded).
    pub fn is_open(&self) -> bool {
        self.status == OfferStatus::Pending
    }

    /// Whether an accept at `at` would be in time.
    pub fn accepts_at(&self, at: Timestamp) -> bool {
        at < self.expires_at
    }
}

/// One change of custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustodyChange {
    /// The event that made the change (case opening or handover acceptance).
    pub event: EventId,
    /// The new custodian.
    pub custodian: AgencyId,
    /// When.
    pub at: Timestamp,
}

impl CaseState {
    /// Refuses unless the sender holds custody as far as this view knows. In a
    /// local view where custody is unknown, a received event is given the
    /// benefit of the doubt (the auditor's merged view checks it fully); an
    /// event this agency originates is not.
    pub(crate) fn require_custodian(&self, cx: &Cx<'_>, action: &str) -> Result<(), Violation> {
        let sender = &cx.e.sender.id;
        let ok = match (&self.custodian, &self.view) {
            (Some(c), _) => c == sender,
            (None, View::Agency(me)) => me != sender,
            (None, View::Auditor) => false,
        };
        if ok {
            return Ok(());
        }
        let holder = self
            .custodian
            .as_ref()
            .map_or_else(|| "not known in this journal".to_owned(), |c| c.to_string());
        Err(cx.deny(
            Rule::NotCustodian,
            format!(
                "Only the agency holding the case may {action}; {sender} does not (custodian: {holder}). \
                 Ask the custodian to do it, or to hand the case over to you first."
            ),
        ))
    }

    /// Pending offer that blocks a new one, with whether it has lapsed.
    fn open_offer(&self) -> Option<(EventId, &Offer)> {
        self.offers
            .iter()
            .find(|(_, o)| o.is_open())
            .map(|(id, o)| (*id, o))
    }

    pub(crate) fn on_offer(
        &mut self,
        cx: &Cx<'_>,
        to: &AgencyId,
        expires_at: Timestamp,
    ) -> Result<(), Violation> {
        let e = cx.e;
        self.require_custodian(cx, "offer a handover")?;
        if *to == e.sender.id {
            return Err(cx.deny(
                Rule::OfferToSelf,
                "A handover must be offered to another agency; this agency already holds the case.",
            ));
        }
        let Some(recipient) = e.recipient.as_ref() else {
            return Err(cx.deny(
                Rule::RecipientMissing,
                format!("A handover offer must be sent to the agency offered custody ({to})."),
            ));
        };
        if recipient.id != *to {
            return Err(cx.deny(
                Rule::RecipientMismatch,
                format!(
                    "The offer names {to} but is sent to {}. Send it to the agency offered custody.",
                    recipient.id
                ),
            ));
        }
        if !cx.rules.may_hold_custody(recipient.kind) {
            return Err(cx.deny(
                Rule::KindMayNotHold,
                format!(
                    "Under rule set {} a {} agency may not hold a case, so custody cannot be offered to {to}. \
                     Refer the person to it for a service instead.",
                    cx.rules.reference(),
                    recipient.kind
                ),
            ));
        }
        if let Some((id, o)) = self.open_offer() {
            if o.accepts_at(e.at) {
                return Err(cx.deny(
                    Rule::OfferPending,
                    format!(
                        "Handover offer {id} to {} is still pending until {}. Wait for the answer, \
                         or cancel that offer before making a new one.",
                        o.to.id, o.expires_at
                    ),
                ));
            }
            return Err(cx.deny(
                Rule::OfferExpiryUnrecorded,
                format!(
                    "Handover offer {id} to {} lapsed at {} but its expiry has not been recorded. \
                     Record that it expired, then make the new offer.",
                    o.to.id, o.expires_at
                ),
            ));
        }
        if expires_at <= e.at {
            return Err(cx.deny(
                Rule::OfferExpiryInvalid,
                format!(
                    "The offer's expiry ({expires_at}) must be later than the offer itself ({}).",
                    e.at
                ),
            ));
        }
        let max = cx.rules.params().max_offer_lifetime_days;
        if expires_at > e.at.plus_days(i64::from(max)) {
            return Err(cx.deny(
                Rule::OfferLifetimeTooLong,
                format!(
                    "Under rule set {} a handover offer may stay open for at most {max} days; \
                     choose an expiry no later than {}.",
                    cx.rules.reference(),
                    e.at.plus_days(i64::from(max))
                ),
            ));
        }
        self.offers.insert(
            e.id,
            Offer {
                from: e.sender.id.clone(),
                to: recipient.clone(),
                offered_at: e.at,
                expires_at,
                status: OfferStatus::Pending,
            },
        );
        Ok(())
    }

    /// The open offer `id`, or why it cannot be answered.
    fn pending_offer(&self, cx: &Cx<'_>, id: EventId) -> Result<&Offer, Violation> {
        let Some(o) = self.offers.get(&id) else {
            return Err(cx.deny(
                Rule::OfferUnknown,
                format!(
                    "No handover offer {id} is known for this case. Check the offer id; \
                     the offering agency must send the offer before it can be answered."
                ),
            ));
        };
        if !o.is_open() {
            let how = match o.status {
                OfferStatus::Accepted(at) => format!("accepted at {at}"),
                OfferStatus::Rejected(at, _) => format!("rejected at {at}"),
                OfferStatus::Cancelled(at) => format!("cancelled at {at}"),
                OfferStatus::Expired(at) => format!("recorded as expired at {at}"),
                OfferStatus::Pending => String::new(),
            };
            return Err(cx.deny(
                Rule::OfferNotPending,
                format!(
                    "Handover offer {id} was already {how}. Ask the custodian for a new offer if needed."
                ),
            ));
        }
        Ok(o)
    }

    fn require_offeree(cx: &Cx<'_>, id: EventId, o: &Offer) -> Result<(), Violation> {
        if o.to.id == cx.e.sender.id {
            return Ok(());
        }
        Err(cx.deny(
            Rule::NotOfferee,
            format!(
                "Handover offer {id} was made to {}, so only {} can answer it.",
                o.to.id, o.to.id
            ),
        ))
    }

    pub(crate) fn on_offer_accepted(&mut self, cx: &Cx<'_>, id: EventId) -> Result<(), Violation> {
        let e = cx.e;
        let o = self.pending_offer(cx, id)?;
        Self::require_offeree(cx, id, o)?;
        if !o.accepts_at(e.at) {
            return Err(cx.deny(
                Rule::OfferExpired,
                format!(
                    "Handover offer {id} expired at {}; an acceptance at {} is too late and custody stays with {}. \
                     Ask {} for a new offer.",
                    o.expires_at, e.at, o.from, o.from
                ),
            ));
        }
        if !cx.rules.may_hold_custody(e.sender.kind) {
            return Err(cx.deny(
                Rule::KindMayNotHold,
                format!(
                    "Under rule set {} a {} agency may not hold a case; reject the offer instead.",
                    cx.rules.reference(),
                    e.sender.kind
                ),
            ));
        }
        if let Some(o) = self.offers.get_mut(&id) {
            o.status = OfferStatus::Accepted(e.at);
        }
        self.custodian = Some(e.sender.id.clone());
        self.custody_log.push(CustodyChange {
            event: e.id,
            custodian: e.sender.id.clone(),
            at: e.at,
        });
        Ok(())
    }

    pub(crate) fn on_offer_rejected(
        &mut self,
        cx: &Cx<'_>,
        id: EventId,
        reason: ServiceReason,
    ) -> Result<(), Violation> {
        let o = self.pending_offer(cx, id)?;
        Self::require_offeree(cx, id, o)?;
        crate::guards::check_reason(cx, reason, "decline custody")?;
        if let Some(o) = self.offers.get_mut(&id) {
            o.status = OfferStatus::Rejected(cx.e.at, reason);
        }
        Ok(())
    }

    pub(crate) fn on_offer_cancelled(&mut self, cx: &Cx<'_>, id: EventId) -> Result<(), Violation> {
        let o = self.pending_offer(cx, id)?;
        if o.from != cx.e.sender.id {
            return Err(cx.deny(
                Rule::NotOfferer,
                format!(
                    "Handover offer {id} was made by {}, so only {} can cancel it.",
                    o.from, o.from
                ),
            ));
        }
        if let Some(o) = self.offers.get_mut(&id) {
            o.status = OfferStatus::Cancelled(cx.e.at);
        }
        Ok(())
    }

    pub(crate) fn on_offer_expired(&mut self, cx: &Cx<'_>, id: EventId) -> Result<(), Violation> {
        let e = cx.e;
        let o = self.pending_offer(cx, id)?;
        if o.from != e.sender.id && o.to.id != e.sender.id {
            return Err(cx.deny(
                Rule::NotOfferer,
                format!(
                    "Only {} (who made handover offer {id}) or {} (who was offered custody) can record its expiry.",
                    o.from, o.to.id
                ),
            ));
        }
        if o.accepts_at(e.at) {
            return Err(cx.deny(
                Rule::OfferNotYetExpired,
                format!(
                    "Handover offer {id} is open until {}; it cannot be recorded as expired at {}. \
                     Cancel it instead if it is no longer wanted.",
                    o.expires_at, e.at
                ),
            ));
        }
        if let Some(o) = self.offers.get_mut(&id) {
            o.status = OfferStatus::Expired(e.at);
        }
        Ok(())
    }

    /// Open offers whose expiry has passed at `now` (the custodian's reminder
    /// to record `HandoverExpired`), in id order.
    pub fn expired_offers(&self, now: Timestamp) -> Vec<EventId> {
        self.offers
            .iter()
            .filter(|(_, o)| o.is_open() && !o.accepts_at(now))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The open offer, if any, with its id.
    pub fn pending_handover(&self) -> Option<(EventId, &Offer)> {
        self.open_offer()
    }
}
