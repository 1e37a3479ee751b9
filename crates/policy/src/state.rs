//! The state of one case as one view sees it, and the `apply` pipeline that
//! checks an event against every rule and then records it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::consent::Consent;
use crate::custody::{CustodyChange, Offer};
use crate::disclosure::DisclosureRecord;
use crate::event::{Body, Event};
use crate::guards::Pathway;
use crate::referral::Referral;
use crate::refusal::RefusalRecord;
use crate::rules::RuleSet;
use crate::violation::{Relied, Rule, Violation};
use crate::vocab::CaseOutcome;

/// Whose journal is being folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum View {
    /// One agency's local journal: events it originated or received. A case
    /// it first hears of from another agency is *introduced* by that event;
    /// facts it never received (who holds custody, whether identification is
    /// concluded) are unknown, see the crate docs for how each rule treats them.
    Agency(AgencyId),
    /// The auditor's merged view of all agencies' journals: every fact must
    /// have been recorded before it is relied on.
    Auditor,
}

/// The outcome of applying an event that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Applied {
    /// Recorded; `disclosure` names the basis relied on if the event disclosed
    /// data to another agency under a basis.
    Recorded {
        /// The basis the disclosure relied on, if it was one.
        disclosure: Option<Relied>,
    },
    /// The same event (same id, same content) was already applied; nothing
    /// changed. Merged views see forwarded events once per journal.
    Duplicate,
}

/// How a case was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opening {
    /// The opening event.
    pub event: EventId,
    /// The opening agency (the first custodian).
    pub by: AgencyId,
    /// When.
    pub at: Timestamp,
    /// Whether the person is a child or presumed a child.
    pub presumed_child: bool,
}

/// How a case was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closure {
    /// The closing event.
    pub event: EventId,
    /// The closing agency (the custodian).
    pub by: AgencyId,
    /// When.
    pub at: Timestamp,
    /// The outcome.
    pub outcome: CaseOutcome,
}

/// Everything the rules know about one case in one view.
///
/// Built only by [`CaseState::apply`] (or [`crate::replay`]), so folding the
/// same events always yields an equal state; all collections are ordered, so
/// `Debug` and JSON output are stable and can be compared or hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseState {
    pub(crate) case: CaseId,
    pub(crate) view: View,
    /// Every applied event's id with the digest of its content
    /// ([`content_digest`]): enough to tell a duplicate from a reused id,
    /// 48 bytes per event instead of the event.
    pub(crate) seen: BTreeMap<EventId, [u8; 32]>,
    pub(crate) opened: Option<Opening>,
    pub(crate) introduced_by: Option<AgencyId>,
    pub(crate) custodian: Option<AgencyId>,
    pub(crate) custody_log: Vec<CustodyChange>,
    pub(crate) closed: Option<Closure>,
    pub(crate) offers: BTreeMap<EventId, Offer>,
    pub(crate) referrals: BTreeMap<EventId, Referral>,
    pub(crate) consents: BTreeMap<EventId, Consent>,
    pub(crate) refusals: Vec<RefusalRecord>,
    pub(crate) disclosures: Vec<DisclosureRecord>,
    pub(crate) pathway: Pathway,
}

/// SHA-256 of `e`'s `Debug` rendering. Every type in an [`Event`] derives
/// `Debug` (strings quoted and escaped, collections ordered), so the
/// rendering is injective and two events have equal digests exactly when
/// they are equal (up to SHA-256 collisions).
fn content_digest(e: &Event) -> [u8; 32] {
    use sha2::Digest;
    use std::fmt::Write;
    struct Hashing(sha2::Sha256);
    impl Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let mut h = Hashing(sha2::Sha256::new());
    // Writing into a hasher cannot fail.
    let _ = write!(h, "{e:?}");
    h.0.finalize().into()
}

/// The event being applied and the rule set it is checked under.
pub(crate) struct Cx<'a> {
    pub(crate) e: &'a Event,
    pub(crate) rules: &'a RuleSet,
}

impl Cx<'_> {
    pub(crate) fn deny(&self, rule: Rule, reason: impl Into<String>) -> Violation {
        Violation::new(rule, self.rules.reference(), reason)
    }
}

impl CaseState {
    /// An empty state for `case` in `view`: nothing is known yet.
    pub fn new(case: CaseId, view: View) -> Self {
        Self {
            case,
            view,
            seen: BTreeMap::new(),
            opened: None,
            introduced_by: None,
            custodian: None,
            custody_log: Vec::new(),
            closed: None,
            offers: BTreeMap::new(),
            referrals: BTreeMap::new(),
            consents: BTreeMap::new(),
            refusals: Vec::new(),
            disclosures: Vec::new(),
            pathway: Pathway::default(),
        }
    }

    /// Checks `e` against every rule of `rules` and, if it passes, records it.
    /// On error the state is unchanged.
    ///
    /// # Errors
    /// Returns the first [`Violation`] found; checks run in this order: rule
    /// set, case, duplicate id, originator kind, recipient, case lifecycle,
    /// disclosure basis and refusals, then the rules of the event's body.
    pub fn apply(&mut self, e: &Event, rules: &RuleSet) -> Result<Applied, Violation> {
        let cx = Cx { e, rules };
        if &e.rule_set != rules.reference() {
            return Err(cx.deny(
                Rule::RuleSetMismatch,
                format!(
                    "This event was made under rule set {} but is being checked under {}. \
                     Check it under the rule set it names.",
                    e.rule_set,
                    rules.reference()
                ),
            ));
        }
        if e.case != self.case {
            return Err(cx.deny(
                Rule::WrongCase,
                format!(
                    "This event is about case {}, not case {}.",
                    e.case, self.case
                ),
            ));
        }
        let digest = content_digest(e);
        if let Some(prev) = self.seen.get(&e.id) {
            if *prev == digest {
                return Ok(Applied::Duplicate);
            }
            return Err(cx.deny(
                Rule::IdReused,
                format!(
                    "Event id {} was already used for a different event. Every event needs a new id; \
                     report this to your system administrator.",
                    e.id
                ),
            ));
        }
        let kind = e.body.kind();
        if !kind.is_case_event() {
            return Err(cx.deny(
                Rule::NotCaseEvent,
                format!("A {kind} event is about the agency, not a case; it cannot be recorded on a case."),
            ));
        }
        if !kind.may_originate(e.sender.kind) {
            let who: Vec<&str> = kind.originators().iter().map(|k| k.as_str()).collect();
            return Err(cx.deny(
                Rule::OriginatorNotAllowed,
                format!(
                    "A {} agency may not record {kind}: only {} agencies may. Ask the responsible agency to record it.",
                    e.sender.kind,
                    who.join(", ")
                ),
            ));
        }
        self.check_recipient(&cx)?;
        let introduce = self.check_lifecycle(&cx, kind)?;
        let relied = self.check_sending(&cx)?;
        self.apply_body(&cx)?;
        if introduce {
            self.introduced_by = Some(e.sender.id.clone());
        }
        if let (Some(basis), Some(to), Some(d)) = (&relied, &e.recipient, &e.disclosure) {
            self.disclosures.push(DisclosureRecord {
                event: e.id,
                kind,
                from: e.sender.clone(),
                to: to.clone(),
                at: e.at,
                purpose: d.purpose,
                categories: e.categories(),
                basis: basis.clone(),
                rule_set: e.rule_set.clone(),
            });
        }
        self.seen.insert(e.id, digest);
        Ok(Applied::Recorded { disclosure: relied })
    }

    fn check_recipient(&self, cx: &Cx<'_>) -> Result<(), Violation> {
        let e = cx.e;
        match &e.recipient {
            Some(r) if r.id == e.sender.id => Err(cx.deny(
                Rule::RecipientIsSender,
                "An agency cannot send an event to itself. Leave the recipient empty to record it locally.",
            )),
            None if e.disclosure.is_some() => Err(cx.deny(
                Rule::BasisWithoutRecipient,
                "This event names a disclosure basis but no recipient. Name the agency it is sent to, \
                 or remove the basis to record it locally.",
            )),
            _ => Ok(()),
        }
    }

    fn apply_body(&mut self, cx: &Cx<'_>) -> Result<(), Violation> {
        let e = cx.e;
        match &e.body {
            Body::CaseOpened { presumed_child } => self.on_opened(cx, *presumed_child),
            Body::CaseClosed { outcome } => self.on_closed(cx, *outcome),
            Body::ConsentGranted(g) => self.on_consent_granted(cx, g),
            Body::ConsentWithdrawn {
                consent,
                effective_at,
            } => self.on_consent_withdrawn(cx, *consent, *effective_at),
            Body::WithdrawalAcknowledged { consent } => self.on_withdrawal_ack(cx, *consent),
            // Attestations: they change no rule state. Whether personal data
            // may still be sent is the erasing agency's own store's business
            // (it has none left), and the auditor reads the links.
            Body::CaseErased { .. } | Body::ErasureAcknowledged { .. } => Ok(()),
            Body::RefusalRecorded(r) => {
                self.on_refusal(cx, r);
                Ok(())
            }
            Body::HandoverOffered { to, expires_at } => self.on_offer(cx, to, *expires_at),
            Body::HandoverAccepted { offer } => self.on_offer_accepted(cx, *offer),
            Body::HandoverRejected { offer, reason } => self.on_offer_rejected(cx, *offer, *reason),
            Body::HandoverCancelled { offer } => self.on_offer_cancelled(cx, *offer),
            Body::HandoverExpired { offer } => self.on_offer_expired(cx, *offer),
            Body::ReferralRequested { service } => self.on_referral_requested(cx, *service),
            Body::ReferralReceived { .. }
            | Body::ReferralAccepted { .. }
            | Body::ReferralRejected { .. }
            | Body::ReferralStarted { .. }
            | Body::ReferralCompleted { .. }
            | Body::ReferralFailed { .. }
            | Body::ReferralCancelled { .. } => self.on_referral_step(cx),
            _ => self.on_pathway(cx),
        }
    }

    /// The case id.
    pub fn case(&self) -> CaseId {
        self.case
    }

    /// The view this state was folded from.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Whether the case was opened or introduced in this view.
    pub fn is_known(&self) -> bool {
        self.opened.is_some() || self.introduced_by.is_some()
    }

    /// How the case was opened, if this view saw it.
    pub fn opening(&self) -> Option<&Opening> {
        self.opened.as_ref()
    }

    /// The agency whose event introduced the case to a local view, if any.
    pub fn introduced_by(&self) -> Option<&AgencyId> {
        self.introduced_by.as_ref()
    }

    /// The one custodian, or `None` if the case is not open in this view or
    /// (in a local view) custody is not known here.
    pub fn custodian(&self) -> Option<&AgencyId> {
        self.custodian.as_ref()
    }

    /// Every change of custody, oldest first (opening, then accepted handovers).
    pub fn custody_log(&self) -> &[CustodyChange] {
        &self.custody_log
    }

    /// How the case was closed, if it was.
    pub fn closure(&self) -> Option<&Closure> {
        self.closed.as_ref()
    }

    /// Handover offers by offer id.
    pub fn offers(&self) -> &BTreeMap<EventId, Offer> {
        &self.offers
    }

    /// Referrals by referral id.
    pub fn referrals(&self) -> &BTreeMap<EventId, Referral> {
        &self.referrals
    }

    /// Consents by consent id.
    pub fn consents(&self) -> &BTreeMap<EventId, Consent> {
        &self.consents
    }

    /// Refusals in the order recorded.
    pub fn refusals(&self) -> &[RefusalRecord] {
        &self.refusals
    }

    /// Every disclosure made under a basis, in the order recorded.
    pub fn disclosures(&self) -> &[DisclosureRecord] {
        &self.disclosures
    }

    /// The identification, reflection and return facts.
    pub fn pathway(&self) -> &Pathway {
        &self.pathway
    }

    /// Ids of every event applied, in id order.
    pub fn event_ids(&self) -> BTreeSet<EventId> {
        self.seen.keys().copied().collect()
    }

    /// Whether the person is a child or presumed a child, as far as this view knows.
    pub fn presumed_child(&self) -> bool {
        self.opened.as_ref().is_some_and(|o| o.presumed_child)
            || self.pathway.risk.as_ref().is_some_and(|r| r.child)
    }

    /// A stable text rendering of the whole state, for equality checks across
    /// processes and for hashing by the auditor.
    pub fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
}
