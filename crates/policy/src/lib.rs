//! The referral mechanism's rules as a pure core.
//!
//! Agencies of a national referral mechanism (police, shelters, NGOs, IOM
//! return desks, ministries of labour) exchange signed events about a
//! person's case. This crate decides, for each event, whether the rules allow
//! it, and folds allowed events into a [`CaseState`]. It does no I/O: no
//! clock (time is always an input), no disk, no network, no randomness, no
//! async. Agency services call it before journaling or publishing, receivers
//! call it before accepting, and the auditor replays journals through it.
//!
//! # What it enforces
//! - **Custody** ([`custody`]): every open case has exactly one custodian,
//!   moved only by offer → accept | reject | cancel | expire.
//! - **Referral** ([`referral`]): FHIR-Task states, who may take each step,
//!   overdue answers.
//! - **Consent and legal basis** ([`consent`], [`decide_disclosure`]): every
//!   disclosure relies on a consent in force covering recipient, purpose and
//!   every category, or on a legal basis the sender's kind may invoke, with a
//!   justification. Withdrawals are never retroactive; [`CaseState::withdrawal_status`]
//!   lists who must acknowledge.
//! - **Refusal** ([`refusal`]): the person's refusal blocks what it covers.
//! - **Treaty guards** ([`guards`]): CETS 197 Art. 10(2), 12(6), 13, 16(7)
//!   and Directive 2011/36/EU Art. 11(3).
//! - **Originators**: an agency kind originates only its own event kinds
//!   ([`waymark_types::EventKind::originators`]).
//! - **Versioned rule sets** ([`rules`]): every event names its rule set,
//!   every decision names the one applied, replay uses the named version.
//!
//! # Invariants
//! - [`CaseState::apply`] either records the event or returns a [`Violation`]
//!   and leaves the state unchanged.
//! - A case has at most one custodian (`Option`, by construction); custody
//!   changes only on an accepted handover that answers an open offer made by
//!   the then custodian, accepted strictly before its expiry.
//! - Every recorded disclosure ([`CaseState::disclosures`]) relied on a basis
//!   in force at its time; later withdrawals, refusals and closures never
//!   change it, and [`decide_disclosure`] answers from facts dated at or
//!   before the time asked about.
//! - [`replay`] is a pure fold: the same events and rule sets give an equal
//!   state (`PartialEq`, stable `Debug`/[`CaseState::fingerprint`]).
//!
//! # Decisions taken here
//! - **Sending classes** ([`Sending`]): an event with a recipient is a
//!   *disclosure* and needs a basis, unless it is a *reply* within a process
//!   the recipient takes part in (receipts, referral and handover answers),
//!   a *notice* that restricts processing (withdrawal, acknowledgement,
//!   refusal), or a *consent forward* to an agency inside the consent's scope.
//!   A reply or notice that declares extra categories is checked as a disclosure.
//! - **Two views** ([`View`]). In the auditor's merged view every fact must be
//!   recorded before it is relied on. In an agency's local view, the first
//!   event received about an unknown case *introduces* it; custody not seen
//!   in that journal is unknown, and a received event that requires the
//!   sender to be custodian is given the benefit of the doubt (the auditor
//!   checks it). Everything else fails closed: a consent the receiver has not
//!   received denies (`consent.unknown`: the sender must send the consent
//!   first, as the same signed event), and missing identification or
//!   assessment facts refuse a return.
//! - **Forwarded context**: the same signed event (same id) may appear in
//!   several journals; applying an identical event twice is a no-op
//!   ([`Applied::Duplicate`]), a different event with a used id is refused.
//! - **Offer expiry**: an offer may be accepted strictly before `expires_at`;
//!   at that instant it has expired. Expiry is recorded explicitly
//!   (`HandoverExpired`); until then a new offer is refused
//!   (`custody.offer_expiry_unrecorded`), and [`CaseState::expired_offers`]
//!   reminds the custodian. Rejection is accepted while the offer is open.
//! - **Custodian kinds** are per rule set (all five kinds in the built-ins);
//!   an offer to, or acceptance by, another kind is refused.
//! - **Closed cases** accept only withdrawals, acknowledgements, refusals,
//!   receipts and referral cancellations; a case cannot close with an open offer.
//! - **Children**: a presumed child's consent needs a guardian or legal
//!   representative; return needs a favourable best-interests assessment even
//!   if the child asked for return.
//! - **Refusal and vital interests**: see [`refusal`]; overriding a refusal of
//!   disclosure is a per-rule-set choice, on in `bg`, off in the baseline.
//! - **Consent in force** from the later of `valid_from` and its recording:
//!   consent is not retroactive either.

#![forbid(unsafe_code)]

pub mod consent;
pub mod custody;
mod disclosure;
mod event;
pub mod guards;
mod lifecycle;
pub mod referral;
pub mod refusal;
mod replay;
pub mod rules;
mod state;
mod violation;
mod vocab;
pub mod wire;

pub use consent::{Consent, WithdrawalStatus};
pub use custody::{CustodyChange, Offer, OfferStatus};
pub use disclosure::{DisclosureQuery, DisclosureRecord, decide_disclosure};
pub use event::{Body, Disclosure, DisclosureBasis, Event, Party, Sending, sending};
pub use guards::{Pathway, is_assistance_purpose};
pub use referral::{Overdue, Referral, ReferralStatus};
pub use refusal::RefusalRecord;
pub use replay::{Replay, replay, replay_journal};
pub use rules::{RuleSet, RuleSetError, RuleSetParams, RuleSetRef, RuleSets};
pub use state::{Applied, CaseState, Closure, Opening, View};
pub use violation::{Decision, Relied, Rule, Violation};
pub use vocab::{
    CaseOutcome, ConsentGrant, ConsentMethod, ConsentScope, GivenBy, Recipient, RecipientSet,
    Refusal, Refused, Service, ServiceReason,
};
pub use wire::{FieldViolation, WireError, WireEvent, event_from_proto};
