//! Two-party links between journals.
//!
//! Every event sent to another agency should appear three more times: as
//! RECEIVED in the recipient's journal, and as the recipient's signed
//! receipt (ORIGINATED at the recipient, RECEIVED back at the sender). Every
//! answer (handover and referral answers, withdrawal and erasure
//! acknowledgements, erasures on notice, receipts) names the event it
//! answers by id AND envelope hash.
//!
//! Memory: an *open* record (~200 B) per sent event until all its sightings
//! have been seen (with journals merged by time that is moments later), then
//! 48 B (id and envelope hash) so later answers can still be matched. So the
//! bound is O(events in flight) + 48 B × events sent to another agency; no
//! event bodies are kept.

use std::collections::{HashMap, HashSet};

use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body;
use waymark_types::EventId;

use crate::finding::{Finding, Location, Severity, rules};

/// A sent event whose sightings are not all seen yet.
#[derive(Debug)]
struct Open {
    hash: [u8; 32],
    sender: String,
    recipient: String,
    is_receipt: bool,
    origin: Option<Location>,
    copy: Option<Location>,
    receipt_in_sender: bool,
    receipt_claim: Option<(u64, Location)>,
}

/// A reference from an answer to the event it answers.
#[derive(Debug)]
struct Ref {
    target: EventId,
    target_raw: String,
    hash: Vec<u8>,
    receipt: Option<u64>,
    /// The answer's sender and recipient.
    from: String,
    to: String,
    /// The sighting is the sender's copy coming back (receipt at the sender).
    at_target_sender: bool,
    at_answerer: bool,
    loc: Location,
}

/// Link state while the journals stream by.
#[derive(Debug, Default)]
pub(crate) struct Links {
    present: HashSet<String>,
    open: HashMap<EventId, Open>,
    closed: HashMap<EventId, [u8; 32]>,
    deferred: Vec<Ref>,
    reported: HashSet<(&'static str, String)>,
    pub(crate) findings: Vec<Finding>,
}

impl Links {
    /// Link checking over the exports of `present` (verified) agencies.
    pub(crate) fn new(present: HashSet<String>) -> Self {
        Self {
            present,
            ..Self::default()
        }
    }

    fn report(&mut self, sev: Severity, rule: &'static str, loc: Location, msg: String) {
        let key = (rule, loc.event_id.clone().unwrap_or_default());
        if self.reported.insert(key) {
            self.findings.push(Finding::new(sev, rule, loc, msg));
        }
    }

    /// One sighting of an event in `journal`'s export.
    pub(crate) fn on_event(
        &mut self,
        journal: &str,
        originated: bool,
        ev: &pb::Event,
        hash: [u8; 32],
        loc: &Location,
    ) {
        let Ok(id) = EventId::parse(&ev.event_id) else {
            return;
        };
        if !ev.recipient_id.is_empty() {
            self.sighting(id, originated, ev, hash, loc);
        } else if originated && matches!(ev.body, Some(Body::CaseErased(_))) {
            // An erasure attestation is journaled without a recipient and
            // travels inside forwards; acknowledgements and the recipients'
            // own attestations name it, so it is an answerable event.
            match self.closed.get(&id) {
                Some(h) if *h != hash => self.mismatch(loc),
                Some(_) => {}
                None => {
                    self.closed.insert(id, hash);
                }
            }
        }
        let answerer = originated || !self.present.contains(&ev.sender_id);
        let back_at_sender = !originated && journal == ev.recipient_id;
        for (target, hash, receipt) in references(ev) {
            let Ok(t) = EventId::parse(&target) else {
                continue;
            };
            let r = Ref {
                target: t,
                target_raw: target,
                hash,
                receipt,
                from: ev.sender_id.clone(),
                to: ev.recipient_id.clone(),
                at_target_sender: back_at_sender,
                at_answerer: answerer,
                loc: loc.clone(),
            };
            if !self.resolve(&r) {
                self.deferred.push(r);
            }
        }
    }

    fn sighting(
        &mut self,
        id: EventId,
        originated: bool,
        ev: &pb::Event,
        hash: [u8; 32],
        loc: &Location,
    ) {
        if let Some(h) = self.closed.get(&id) {
            if *h != hash {
                self.mismatch(loc);
            }
            return;
        }
        let o = self.open.entry(id).or_insert_with(|| Open {
            hash,
            sender: ev.sender_id.clone(),
            recipient: ev.recipient_id.clone(),
            is_receipt: matches!(ev.body, Some(Body::Receipt(_))),
            origin: None,
            copy: None,
            receipt_in_sender: false,
            receipt_claim: None,
        });
        if o.hash != hash {
            self.mismatch(loc);
            return;
        }
        if originated {
            o.origin.get_or_insert_with(|| loc.clone());
        } else {
            o.copy.get_or_insert_with(|| loc.clone());
        }
        self.maybe_close(id);
    }

    fn mismatch(&mut self, loc: &Location) {
        self.report(
            Severity::Critical,
            rules::LINK_HASH_MISMATCH,
            loc.clone(),
            "another journal holds different bytes under this event id".into(),
        );
    }

    /// Checks `r` against its target if the target is known; false if not yet.
    fn resolve(&mut self, r: &Ref) -> bool {
        let (hash, parties) = match (self.open.get_mut(&r.target), self.closed.get(&r.target)) {
            (Some(o), _) => {
                let parties = (o.sender.clone(), o.recipient.clone());
                if r.receipt.is_some() && o.hash.as_slice() == r.hash {
                    if r.at_target_sender {
                        o.receipt_in_sender = true;
                    }
                    if let (Some(seq), true) = (r.receipt, r.at_answerer) {
                        o.receipt_claim.get_or_insert((seq, r.loc.clone()));
                    }
                }
                (o.hash, Some(parties))
            }
            (None, Some(h)) => (*h, None),
            (None, None) => return false,
        };
        if hash.as_slice() != r.hash {
            let loc = r.loc.clone();
            self.report(
                Severity::Critical,
                rules::LINK_HASH_MISMATCH,
                loc,
                format!(
                    "this answer names event {} with envelope hash {}, but that event's envelope hashes to {}",
                    r.target_raw,
                    hex::encode(&r.hash),
                    hex::encode(hash)
                ),
            );
        } else if let (Some((s, rc)), Some(_)) = (&parties, r.receipt)
            && (*s != r.to || *rc != r.from)
        {
            self.report(
                Severity::Critical,
                rules::LINK_FORGED_RECEIPT,
                r.loc.clone(),
                format!(
                    "a receipt by {} to {} for event {}, which {s} sent to {rc}",
                    r.from, r.to, r.target_raw
                ),
            );
        }
        self.maybe_close(r.target);
        true
    }

    fn maybe_close(&mut self, id: EventId) {
        let Some(o) = self.open.get(&id) else { return };
        let delivered = o.copy.is_some() || !self.present.contains(&o.recipient);
        let answered = o.is_receipt || (o.receipt_in_sender && o.receipt_claim.is_some());
        if o.origin.is_some()
            && delivered
            && answered
            && let Some(o) = self.open.remove(&id)
        {
            self.check_seq(&o);
            self.closed.insert(id, o.hash);
        }
    }

    fn check_seq(&mut self, o: &Open) {
        if let (Some((claimed, rloc)), Some(copy)) = (&o.receipt_claim, &o.copy)
            && *claimed != 0
            && copy.seq != Some(*claimed)
        {
            self.report(
                Severity::Error,
                rules::LINK_RECEIPT_SEQ,
                rloc.clone(),
                format!(
                    "the receipt says the event was journaled at #{claimed}, but {} journaled it at #{}",
                    copy.agency,
                    copy.seq.unwrap_or(0)
                ),
            );
        }
    }

    /// Resolves what is left and reports broken links.
    pub(crate) fn finish(mut self) -> Vec<Finding> {
        for r in std::mem::take(&mut self.deferred) {
            if self.resolve(&r) {
                continue;
            }
            let checkable = self.present.contains(&r.from) || self.present.contains(&r.to);
            let (sev, rule, what) = match (checkable, r.receipt.is_some()) {
                (false, _) => (
                    Severity::Info,
                    rules::LINK_UNVERIFIABLE,
                    "cannot be checked",
                ),
                (true, true) => (Severity::Critical, rules::LINK_FORGED_RECEIPT, "a receipt"),
                (true, false) => (Severity::Error, rules::LINK_DANGLING, "an answer"),
            };
            self.report(
                sev,
                rule,
                r.loc.clone(),
                format!(
                    "{what} for event {} ({} → {}), which no journal holds",
                    r.target_raw, r.from, r.to
                ),
            );
        }
        let open: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        for o in open {
            self.check_seq(&o);
            let sender_here = self.present.contains(&o.sender);
            let recipient_here = self.present.contains(&o.recipient);
            match (&o.origin, &o.copy) {
                (None, Some(copy)) if sender_here => self.report(
                    Severity::Critical,
                    rules::LINK_NOT_ORIGINATED,
                    copy.clone(),
                    format!(
                        "received from {}, whose journal does not hold this event",
                        o.sender
                    ),
                ),
                (Some(origin), copy) if !o.is_receipt => {
                    let quarantined = o.receipt_claim.as_ref().is_some_and(|c| c.0 == 0);
                    let receipted =
                        !quarantined && (o.receipt_in_sender || o.receipt_claim.is_some());
                    if recipient_here && copy.is_none() && receipted {
                        self.report(
                            Severity::Error,
                            rules::LINK_NOT_JOURNALED,
                            origin.clone(),
                            format!(
                                "{} receipted this event but its journal does not hold it",
                                o.recipient
                            ),
                        );
                    } else if quarantined {
                    } else if !o.receipt_in_sender && (copy.is_none() || !recipient_here) {
                        self.report(
                            Severity::Warning,
                            rules::LINK_UNDELIVERED,
                            origin.clone(),
                            format!("sent to {}: no receipt and no received copy", o.recipient),
                        );
                    } else if !o.receipt_in_sender {
                        self.report(
                            Severity::Warning,
                            rules::LINK_RECEIPT_MISSING,
                            origin.clone(),
                            format!(
                                "{} journaled it, but its receipt is not in the sender's journal",
                                o.recipient
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
        self.findings
    }
}

/// The events an event answers: (event id, envelope hash, receipt seq).
fn references(ev: &pb::Event) -> Vec<(String, Vec<u8>, Option<u64>)> {
    let r = |x: &Option<pb::EventRef>| x.clone().map(|x| (x.event_id, x.envelope_hash, None));
    let one = match &ev.body {
        Some(Body::HandoverAccepted(b)) => r(&b.offer),
        Some(Body::HandoverRejected(b)) => r(&b.offer),
        Some(Body::HandoverCancelled(b)) => r(&b.offer),
        Some(Body::HandoverExpired(b)) => r(&b.offer),
        Some(Body::ReferralReceived(b)) => r(&b.request),
        Some(Body::ReferralAccepted(b)) => r(&b.request),
        Some(Body::ReferralRejected(b)) => r(&b.request),
        Some(Body::ReferralStarted(b)) => r(&b.request),
        Some(Body::ReferralCompleted(b)) => r(&b.request),
        Some(Body::ReferralFailed(b)) => r(&b.request),
        Some(Body::ReferralCancelled(b)) => r(&b.request),
        Some(Body::WithdrawalAcknowledged(b)) => r(&b.withdrawal),
        Some(Body::ErasureAcknowledged(b)) => r(&b.erasure),
        Some(Body::CaseErased(b)) => r(&b.requested_by),
        Some(Body::Receipt(b)) => b.event.clone().map(|x| {
            let journaled = b.status == pb::ReceiptStatus::Journaled as i32;
            (
                x.event_id,
                x.envelope_hash,
                Some(if journaled { b.journal_seq } else { 0 }),
            )
        }),
        _ => None,
    };
    one.into_iter().collect()
}
