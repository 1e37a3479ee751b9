//! The wire format (`waymark.v1.Event`, prost bindings from `waymark-proto`)
//! converted into the policy model ([`Event`]), with every field validated.
//!
//! # Division of labour
//! This module checks **shape**: ids parse (lowercase hyphenated UUIDs,
//! [`AgencyId`](waymark_types::AgencyId) rules), required fields are present (timestamps, enums not
//! `UNSPECIFIED` where the proto says "rejected"), enum numbers are known,
//! `rule_set` reads `<id>@<version>`, a recipient has a kind, an `EventRef`
//! has a parseable id and a 32-byte hash, and fields that must go together do
//! (`basis` with `purpose`). Whether the event is *allowed* is the policy
//! core's question ([`CaseState::apply`](crate::CaseState::apply)): a
//! disclosure without a basis, a legal basis with an empty justification, a
//! consent with an empty scope, a basis without a recipient, or a sender kind
//! that may not originate the body all convert fine and are refused there,
//! with the rule's own explanation.
//!
//! Shape checks that the policy cannot make because it never sees the fields:
//! every category in a `sealed` section must be listed in `shares` (else the
//! basis would not be checked against it), sealed data and forwarded events
//! need a recipient, and `shares` needs a basis and purpose.
//!
//! # Errors
//! [`WireError`] lists **every** violation found, each with the protobuf path
//! of the field (`sender_id`, `basis.legal.basis`, `shares[2]`,
//! `body.handover_offered.expires_at`); it never panics on any input,
//! including unknown enum numbers (prost keeps them as `i32`).
//!
//! # Three results
//! [`event_from_proto`] returns a [`WireEvent`]:
//! - [`WireEvent::Event`]: a case event, ready for the policy core.
//! - [`WireEvent::Capacity`]: `capacity_updated`, an agency-level event with
//!   an empty `case_id`. The policy [`Event`] always names a case (and
//!   [`CaseState::apply`](crate::CaseState::apply) refuses capacity updates),
//!   so it is returned on its own for the shelter registry.
//! - [`WireEvent::Forwarded`]: another agency's signed envelope passed on
//!   whole. The inner event cannot be a [`Body`](crate::Body): it is a
//!   separate signed fact. The receiving bus must (1) verify the outer
//!   envelope's signature as for any event; (2) verify the inner envelope's
//!   signature against its originator's key; (3) decode the inner
//!   `waymark.v1.Event` from the inner payload and convert it with
//!   [`event_from_proto`] (refusing a forward of a forward, or of a capacity
//!   update, if it does not want them); (4) check that the inner event is
//!   about the outer event's `case`; and (5) apply the **inner** event to the
//!   case as the same signed event it is in the originator's journal (the
//!   policy's *forwarded context*: the same event id in several journals, an
//!   identical re-application is [`Applied::Duplicate`](crate::Applied)). The
//!   forward itself discloses the inner event's categories to the outer
//!   recipient; the policy has no rule for that hop, so the bus should ask
//!   [`decide_disclosure`](crate::decide_disclosure) with the outer
//!   [`Header`]'s parties, time and basis and the inner event's
//!   [`Event::categories`] (a forwarded consent grant to an agency in its
//!   scope needs no basis, as for [`Sending::ConsentForward`](crate::Sending)).
//!
//! # What the policy model drops
//! Fields the rules do not use are validated and then dropped: the
//! identification channel, exploitation forms, free-text details and roles,
//! referral urgency and `respond_by`, `EventRef.envelope_hash`, sealed
//! sections, consent language and obtaining agency, and the like. Some proto
//! values map into a coarser policy vocabulary (see the functions in
//! [`vocab`]). Two mappings decide meaning and are worth knowing:
//! - `RefusalRecorded.purposes` is validated but the policy's
//!   [`Refusal`](crate::Refusal) has no purposes, so a refusal limited to some
//!   purposes is enforced for **all** purposes (fails closed).
//! - `ReturnRiskAssessed` becomes `best_interests_ok = risk is LOW or MEDIUM
//!   and (not a child, or best_interests_ok)`.
//!
//! There is no reverse conversion of whole events: the policy event keeps
//! too little (no envelope hashes, no free text) to rebuild a proto one.
//! Services build the proto event, convert it here to ask the policy, then
//! sign the proto bytes. The vocabulary maps both ways ([`vocab`]).

mod body;
mod error;
mod fields;
mod pathway;
pub mod vocab;

use std::collections::BTreeSet;

use waymark_proto::v1 as pb;
use waymark_types::{CaseId, EventId, Timestamp};

use self::body::{Ctx, Decoded, RawRecipient};
use self::error::Check;
pub use self::error::{FieldViolation, WireError};
pub use self::fields::{timestamp_from_proto, timestamp_to_proto};
use crate::event::{Disclosure, DisclosureBasis, Event, Party};
use crate::rules::RuleSetRef;

/// The fields every event carries besides its case and body, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `event_id`.
    pub id: EventId,
    /// `sender_id` and `sender_kind`.
    pub sender: Party,
    /// `recipient_id` and `recipient_kind`, if the event is sent.
    pub recipient: Option<Party>,
    /// `occurred_at`.
    pub at: Timestamp,
    /// `rule_set`.
    pub rule_set: RuleSetRef,
    /// `basis`, `purpose` and `shares`, if a basis is given.
    pub disclosure: Option<Disclosure>,
}

/// The body of `capacity_updated`: a shelter's free places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Places in total.
    pub total_places: u32,
    /// Places free now.
    pub free_places: u32,
    /// Whether the shelter accepts children.
    pub accepts_children: bool,
}

/// A validated `waymark.v1.Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireEvent {
    /// A case event, for [`CaseState::apply`](crate::CaseState::apply).
    Event(Event),
    /// An agency-level capacity update (no case).
    Capacity {
        /// Who sent it, when, under which rules.
        header: Header,
        /// The shelter's places.
        capacity: Capacity,
    },
    /// Another agency's signed event, forwarded whole. See the module docs
    /// for what the receiver must do with it.
    Forwarded {
        /// The forwarding event's own fields.
        header: Header,
        /// The case the forward is about; the inner event must be about it too.
        case: CaseId,
        /// The inner `waymark.v1.Envelope` encoding, exactly as received:
        /// decoded once here to check its type, never re-encoded.
        envelope: Vec<u8>,
    },
}

impl WireEvent {
    /// The event's id (for a forward, the forwarding event's own id).
    pub fn id(&self) -> EventId {
        match self {
            WireEvent::Event(e) => e.id,
            WireEvent::Capacity { header, .. } | WireEvent::Forwarded { header, .. } => header.id,
        }
    }

    /// The case event, if this is one.
    pub fn into_event(self) -> Option<Event> {
        match self {
            WireEvent::Event(e) => Some(e),
            WireEvent::Capacity { .. } | WireEvent::Forwarded { .. } => None,
        }
    }
}

/// Converts a protobuf event into the policy model, validating every field.
///
/// # Errors
/// A [`WireError`] listing every missing or malformed field, by protobuf
/// path. Semantic rules (is this disclosure allowed, may this kind originate
/// this body) are not checked here but by the policy core.
pub fn event_from_proto(e: &pb::Event) -> Result<WireEvent, WireError> {
    let mut c = Check::default();
    let capacity = matches!(e.body, Some(pb::event::Body::CapacityUpdated(_)));
    let id = c.event_id("event_id", &e.event_id);
    let case = match (capacity, e.case_id.is_empty()) {
        (true, true) => Some(None),
        (true, false) => {
            c.fail(
                "case_id",
                "must be empty for capacity_updated, which is about the agency, not a case",
            );
            None
        }
        (false, _) => c.case_id("case_id", &e.case_id).map(Some),
    };
    let sender_id = c.agency_id("sender_id", &e.sender_id);
    let sender_kind = c.enumerated("sender_kind", e.sender_kind, vocab::agency_kind);
    let recipient = recipient(&mut c, e);
    let at = c.time(
        "occurred_at",
        e.occurred_at.as_ref(),
        "when the fact happened, by the sender's clock",
    );
    let rule_set = c.rule_set("rule_set", &e.rule_set);
    let disclosure = disclosure(&mut c, e);
    sealed(&mut c, e);
    let raw = match &recipient {
        None => RawRecipient::Malformed,
        Some(None) => RawRecipient::Missing,
        Some(Some(p)) => RawRecipient::Valid(p),
    };
    let body = match &e.body {
        None => {
            c.fail(
                "body",
                "required: set exactly one member of the body oneof (e.g. case_opened); a body \
                 added in a newer protocol version than this agency's is also seen as unset",
            );
            None
        }
        Some(b) => body::decode(&mut c, b, Ctx { recipient: raw, at }),
    };
    let built = (|| {
        let header = Header {
            id: id?,
            sender: Party {
                id: sender_id?,
                kind: sender_kind?,
            },
            recipient: recipient?,
            at: at?,
            rule_set: rule_set?,
            disclosure: disclosure?,
        };
        Some(match (body?, case?) {
            (Decoded::Body(body), Some(case)) => WireEvent::Event(Event {
                id: header.id,
                case,
                sender: header.sender,
                recipient: header.recipient,
                at: header.at,
                rule_set: header.rule_set,
                disclosure: header.disclosure,
                body,
            }),
            (Decoded::Capacity(capacity), None) => WireEvent::Capacity { header, capacity },
            (Decoded::Forwarded(envelope), Some(case)) => WireEvent::Forwarded {
                header,
                case,
                envelope,
            },
            // Impossible by construction of `case` above; `finish` reports it.
            (Decoded::Body(_) | Decoded::Forwarded(_), None) | (Decoded::Capacity(_), Some(_)) => {
                return None;
            }
        })
    })();
    c.finish(built)
}

/// `Some(None)` when no recipient is named, `None` when malformed.
fn recipient(c: &mut Check, e: &pb::Event) -> Option<Option<Party>> {
    if e.recipient_id.is_empty() {
        if e.recipient_kind != 0 {
            c.fail(
                "recipient_kind",
                "set although recipient_id is empty: name the recipient agency in recipient_id, or \
                 leave both unset to keep the event in the sender's journal only",
            );
            return None;
        }
        return Some(None);
    }
    let id = c.agency_id("recipient_id", &e.recipient_id);
    let kind = if e.recipient_kind == 0 {
        c.fail(
            "recipient_kind",
            "required when recipient_id is set: the recipient agency's kind \
             (waymark.v1.AgencyKind, e.g. AGENCY_KIND_SHELTER)",
        );
        None
    } else {
        c.enumerated("recipient_kind", e.recipient_kind, vocab::agency_kind)
    };
    Some(Some(Party {
        id: id?,
        kind: kind?,
    }))
}

/// `Some(None)` when no basis is given, `None` when malformed.
fn disclosure(c: &mut Check, e: &pb::Event) -> Option<Option<Disclosure>> {
    use pb::disclosure_basis::Basis;
    // An empty DisclosureBasis message is treated as no basis.
    let basis = e
        .basis
        .as_ref()
        .and_then(|b| b.basis.as_ref())
        .map(|b| match b {
            Basis::ConsentId(id) => c
                .event_id("basis.consent_id", id)
                .map(DisclosureBasis::Consent),
            Basis::Legal(l) => c
                .enumerated("basis.legal.basis", l.basis, vocab::legal_basis)
                .map(|basis| DisclosureBasis::Legal {
                    basis,
                    justification: l.justification.clone(),
                }),
        });
    let purpose = (e.purpose != 0).then(|| c.enumerated("purpose", e.purpose, vocab::purpose));
    let shares: Option<BTreeSet<_>> = c.enum_set("shares", &e.shares, vocab::data_category);
    match (basis, purpose) {
        (None, None) if e.shares.is_empty() => Some(None),
        (None, None) => {
            c.fail(
                "shares",
                "lists categories disclosed, but no basis and purpose are given: sharing these \
                 categories is a disclosure, so set basis (a consent_id or a legal basis) and \
                 purpose, or remove shares",
            );
            None
        }
        (Some(_), None) => {
            c.fail(
                "purpose",
                "required when basis is set: the purpose of the disclosure (waymark.v1.Purpose)",
            );
            None
        }
        (None, Some(_)) => {
            c.fail(
                "basis",
                "required when purpose is set: the consent_id of the consent relied on, or a \
                 legal basis with its justification",
            );
            None
        }
        (Some(basis), Some(purpose)) => Some(Some(Disclosure {
            purpose: purpose?,
            basis: basis?,
            shares: shares?,
        })),
    }
}

/// Checks the sealed sections' shape. The policy never sees them, so every
/// category sealed must be declared in `shares`, where the basis covers it.
fn sealed(c: &mut Check, e: &pb::Event) {
    if !e.sealed.is_empty() && e.recipient_id.is_empty() {
        c.fail(
            "sealed",
            "personal data is sealed to a recipient agency, but recipient_id is empty: name the \
             recipient, or remove the sealed sections",
        );
    }
    for (i, s) in e.sealed.iter().enumerate() {
        let at = |f: &str| format!("sealed[{i}].{f}");
        for (field, empty, what) in [
            (
                "recipient_key_id",
                s.recipient_key_id.is_empty(),
                "the recipient's encryption key id",
            ),
            ("suite", s.suite.is_empty(), "the HPKE suite"),
            (
                "encapsulated_key",
                s.encapsulated_key.is_empty(),
                "the HPKE encapsulated key",
            ),
        ] {
            if empty {
                c.fail(at(field), format!("required: {what}"));
            }
        }
        if !s.ciphertext.is_empty() {
            c.fail(
                at("ciphertext"),
                "must be empty: the ciphertext travels detached beside the envelope (header \
                 Waymark-Sealed-<i>), never inside a signed event, so that no journal keeps it",
            );
        }
        if s.ciphertext_sha256.len() != 32 {
            c.fail(
                at("ciphertext_sha256"),
                "required: the SHA-256 (32 bytes) of the detached ciphertext",
            );
        }
        if s.categories.is_empty() {
            c.fail(
                at("categories"),
                "required: the data categories inside (each also listed in shares)",
            );
        }
        for (j, v) in s.categories.iter().enumerate() {
            let field = at(&format!("categories[{j}]"));
            let Some(cat) = c.enumerated(&field, *v, vocab::data_category) else {
                continue;
            };
            if !e.shares.contains(v) {
                c.fail(
                    field,
                    format!(
                        "category {cat} is sealed here but not listed in shares: list every sealed \
                         category in shares, so that the disclosure basis is checked against it"
                    ),
                );
            }
        }
    }
}
