//! The checks every incoming event passes, in order, and the policy check
//! shared with [`crate::Bus::send`].
//!
//! Incoming: size → envelope decodes → payload type is event → event decodes
//! → subject parses → exactly one signature, by a directory key valid at
//! `occurred_at` → the key's owner is the subject's sender token and
//! `sender_id`, and its kind is `sender_kind` → the subject's recipient is
//! this agency and `recipient_id` → the subject's kind token is the body's →
//! field shape ([`event_from_proto`]) → not dated in the future beyond the
//! allowed skew → (receipts) it answers an event this agency sent to the
//! signer, with the journaled envelope hash → dedup by event id → sealed
//! personal data: detached ciphertexts match the signed digests and open
//! with this agency's key ([`crate::sealing`]) → the rules
//! in this agency's view of the case (for a forward: the inner envelope
//! verifies with its originator's key, the forward is an allowed disclosure,
//! and the inner event is applied as the same signed event).
//!
//! The checks up to the clock skew read no state ([`parse`],
//! [`authenticate_parsed`]): the
//! inbox runs them for a batch of messages in parallel. The rest
//! ([`decide`]) reads the journal and folds events into the cached case
//! states, so it runs in stream order.

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::timestamp_from_proto;
use waymark_journal::JournalError;
use waymark_policy::{
    Decision, DisclosureQuery, Sending, Violation, WireEvent, decide_disclosure, event_from_proto,
};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::event::Body as B;
use waymark_proto::v1::{EntryKind, Envelope, Event as PbEvent, JournalEntry};
use waymark_types::{AgencyId, CaseId, EventId, EventKind, Timestamp};

use crate::Ctx;
use crate::quarantine::{Reason, Rejection};
use crate::subjects::{self, Subject, SubjectKind};

/// An incoming event that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) event: PbEvent,
    pub(crate) case: Option<CaseId>,
    /// For a receipt: the event of ours it completes.
    pub(crate) completes: Option<EventId>,
    /// Already journaled: only the receipt is re-sent.
    pub(crate) duplicate: bool,
    /// The opened sealed sections (empty for a duplicate: kept the first time).
    pub(crate) opened: crate::Opened,
}

/// A refusal or an accepted event; `Err` only for journal read failures
/// (transient: the message is not acknowledged and comes again).
pub(crate) type Checked = Result<Result<Accepted, Rejection>, JournalError>;

/// An incoming event whose envelope, signature, subject and shape checked
/// out: the checks that need no state, so the inbox runs them in parallel.
pub(crate) struct Authentic {
    ev: PbEvent,
    wire: WireEvent,
    event_id: EventId,
    owner: AgencyId,
}

/// A message decoded far enough to know who signed it and when.
pub(crate) struct Parsed {
    /// The signed envelope.
    pub(crate) env: Envelope,
    ev: PbEvent,
    sender: AgencyId,
    recipient: AgencyId,
    kind: SubjectKind,
    /// When the event says it was signed (the key must be valid then).
    pub(crate) at: Timestamp,
}

/// Size, envelope, payload type, event, subject and `occurred_at`.
pub(crate) fn parse(ctx: &Ctx, subject: &str, bytes: &[u8]) -> Result<Parsed, Rejection> {
    if bytes.len() > ctx.config.max_message_bytes {
        return Err(Rejection::new(
            Reason::Oversized,
            format!(
                "{} bytes > limit {}",
                bytes.len(),
                ctx.config.max_message_bytes
            ),
        ));
    }
    let Ok(env) = Envelope::decode(bytes) else {
        return Err(Rejection::new(
            Reason::Malformed,
            "not an Envelope encoding",
        ));
    };
    if env.payload_type != PAYLOAD_TYPE_EVENT {
        return Err(Rejection::new(
            Reason::WrongPayloadType,
            format!("payload type {:.80?}", env.payload_type),
        ));
    }
    let Ok(ev) = PbEvent::decode(env.payload.as_slice()) else {
        return Err(Rejection::new(
            Reason::Malformed,
            "payload is not an Event encoding",
        ));
    };
    let Some(Subject::Event {
        sender,
        recipient,
        kind,
    }) = subjects::parse(subject)
    else {
        return Err(Rejection::new(
            Reason::SubjectMismatch,
            "not an event subject",
        ));
    };
    let Some(at) = ev.occurred_at.as_ref().map(timestamp_from_proto) else {
        return Err(Rejection::new(Reason::Malformed, "occurred_at is missing"));
    };
    Ok(Parsed {
        env,
        ev,
        sender,
        recipient,
        kind,
        at,
    })
}

/// The checks up to the clock skew (see the module docs) after [`parse`],
/// which read no journal and no case state: `Err` is the refusal; `signature_verified` when
/// [`crate::directory::Directory::verify_batch`] found the envelope good.
pub(crate) fn authenticate_parsed(
    ctx: &Ctx,
    parsed: Parsed,
    signature_verified: bool,
    now: Timestamp,
) -> Result<Authentic, Rejection> {
    let me = &ctx.config.agency;
    let Parsed {
        env,
        ev,
        sender,
        recipient,
        kind,
        at,
    } = parsed;
    let owner = if signature_verified {
        ctx.directory.owner_of_verified(&env)?
    } else {
        ctx.directory.verify(&env, PAYLOAD_TYPE_EVENT, at)?
    };
    let Ok(event_id) = EventId::parse(&ev.event_id) else {
        return Err(Rejection::new(
            Reason::Malformed,
            "event_id is not a lowercase hyphenated UUID",
        ));
    };
    if owner != sender || ev.sender_id != owner.as_str() {
        return Err(Rejection::new(
            Reason::SubjectMismatch,
            format!(
                "signed by {owner}, subject sender {sender}, sender_id {:.48}",
                ev.sender_id
            ),
        ));
    }
    // From here on the sender is authentic: refusals are receipted.
    let refuse =
        |reason, detail: String| Rejection::new(reason, detail).authentic(event_id, owner.clone());
    if recipient != *me || ev.recipient_id != me.as_str() {
        return Err(refuse(
            Reason::SubjectMismatch,
            format!(
                "addressed to {recipient} / {:.48}, this is {me}",
                ev.recipient_id
            ),
        ));
    }
    // An event from a batch states its kind in its body only.
    if kind != SubjectKind::Batch && SubjectKind::of_event(&ev) != Some(kind) {
        return Err(refuse(
            Reason::SubjectMismatch,
            format!("subject kind {} does not match the body", kind.as_str()),
        ));
    }
    let kind_ok = ctx.directory.kind(&owner).is_some_and(|k| {
        waymark_policy::wire::vocab::agency_kind_to_proto(k) as i32 == ev.sender_kind
    });
    if !kind_ok {
        return Err(refuse(
            Reason::SubjectMismatch,
            format!("sender_kind {} is not {owner}'s kind", ev.sender_kind),
        ));
    }
    let wire = match event_from_proto(&ev) {
        Ok(w) => w,
        Err(e) => {
            let fields: Vec<String> = e
                .violations()
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            return Err(refuse(Reason::Malformed, fields.join("; ")));
        }
    };
    let skew = i64::try_from(ctx.config.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
    if at.millis() > now.millis().saturating_add(skew) {
        return Err(refuse(
            Reason::PolicyViolation,
            format!("occurred_at {at} is in the future (now {now})"),
        ));
    }
    Ok(Authentic {
        ev,
        wire,
        event_id,
        owner,
    })
}

/// The checks that read the journal and the case state, in stream order:
/// receipt target, dedup, sealed data, the rules (which fold the event into
/// the cached case state).
pub(crate) fn decide(ctx: &Ctx, a: Authentic, headers: Option<&async_nats::HeaderMap>) -> Checked {
    let Authentic {
        ev,
        wire,
        event_id,
        owner,
    } = a;
    let refuse = |reason, detail: String| {
        Ok(Err(
            Rejection::new(reason, detail).authentic(event_id, owner.clone())
        ))
    };
    let completes = match &ev.body {
        Some(B::Receipt(r)) => match receipt_target(ctx, r, &owner)? {
            Ok(id) => Some(id),
            Err(detail) => return refuse(Reason::ReceiptMismatch, detail),
        },
        _ => None,
    };
    let case = CaseId::parse(&ev.case_id).ok();
    if ctx.journal.event_seq(&event_id)?.is_some() {
        return Ok(Ok(Accepted {
            event: ev,
            case,
            completes,
            duplicate: true,
            opened: crate::Opened::default(),
        }));
    }
    // Before the policy folds the event into the cached case state: a
    // refusal here leaves that state untouched.
    let opened = if ev.sealed.is_empty() {
        crate::Opened::default()
    } else {
        if ctx.sealing().is_none() {
            // The agency installs its sealing right after starting the bus:
            // not a fault of the message, so it comes again.
            return Err(JournalError::Failed(
                "sealed data arrived before the agency installed its sealing".into(),
            ));
        }
        match crate::sealing::open_all(ctx.sealing(), &ev, headers) {
            Ok(o) => o,
            Err(detail) => return refuse(Reason::SealedData, detail),
        }
    };
    if let Err(detail) = policy(ctx, &wire)? {
        return refuse(Reason::PolicyViolation, detail);
    }
    Ok(Ok(Accepted {
        event: ev,
        case,
        completes,
        duplicate: false,
        opened,
    }))
}

/// Checks that a receipt answers an event this agency originated for
/// `signer`, with the journaled envelope's hash.
fn receipt_target(
    ctx: &Ctx,
    r: &waymark_proto::v1::Receipt,
    signer: &AgencyId,
) -> Result<Result<EventId, String>, JournalError> {
    let Some(rf) = &r.event else {
        return Ok(Err("receipt names no event".into()));
    };
    let Ok(id) = EventId::parse(&rf.event_id) else {
        return Ok(Err("receipt event id is malformed".into()));
    };
    let Some(seq) = ctx.journal.event_seq(&id)? else {
        return Ok(Err(format!(
            "receipt for {id}, which this agency never sent"
        )));
    };
    let entry = ctx
        .journal
        .entry(seq)?
        .and_then(|b| JournalEntry::decode(b.as_slice()).ok());
    let Some(entry) = entry.filter(|e| e.kind == EntryKind::Originated as i32) else {
        return Ok(Err(format!(
            "receipt for {id}, which this agency did not originate"
        )));
    };
    if Sha256::digest(&entry.envelope).as_slice() != rf.envelope_hash.as_slice() {
        return Ok(Err(format!("receipt for {id} names another envelope hash")));
    }
    let to = crate::state::decode_event(&entry.envelope).map(|e| e.recipient_id);
    if to.as_deref() != Some(signer.as_str()) {
        return Ok(Err(format!(
            "receipt for {id} signed by {signer}, not its recipient"
        )));
    }
    Ok(Ok(id))
}

fn describe(v: &Violation) -> String {
    format!("{:?} under {}: {}", v.rule, v.rule_set, v.reason)
}

/// [`policy`] on an async thread, for an event whose case view is cached
/// and at most `budget` entries behind ([`crate::state::CaseCache::try_with_case`]);
/// `None` when it would need the blocking path (a forward, whose inner
/// envelope is verified, is always left to it).
pub(crate) fn try_policy(
    ctx: &Ctx,
    wire: &WireEvent,
    budget: usize,
) -> Result<Option<Result<(), String>>, JournalError> {
    match wire {
        WireEvent::Event(e) => {
            let Some(rules) = ctx.rules.get(&e.rule_set) else {
                return Ok(Some(Err(format!("unknown rule set {}", e.rule_set))));
            };
            ctx.cache
                .try_with_case(&ctx.journal, &ctx.rules, e.case, budget, |st| {
                    st.apply(e, rules).map(|_| ()).map_err(|v| describe(&v))
                })
        }
        WireEvent::Capacity { .. } => policy(ctx, wire).map(Some),
        WireEvent::Forwarded { .. } => Ok(None),
    }
}

/// The rules, in this agency's view: `Ok(Err(detail))` when they refuse.
/// On success the event (for a forward: the inner event) is applied to the
/// cached case state.
pub(crate) fn policy(ctx: &Ctx, wire: &WireEvent) -> Result<Result<(), String>, JournalError> {
    match wire {
        WireEvent::Event(e) => {
            let Some(rules) = ctx.rules.get(&e.rule_set) else {
                return Ok(Err(format!("unknown rule set {}", e.rule_set)));
            };
            ctx.cache.with_case(&ctx.journal, &ctx.rules, e.case, |st| {
                st.apply(e, rules).map(|_| ()).map_err(|v| describe(&v))
            })
        }
        WireEvent::Capacity { header, .. } => {
            if EventKind::CapacityUpdated.may_originate(header.sender.kind) {
                Ok(Ok(()))
            } else {
                Ok(Err(format!(
                    "a {} may not send capacity updates",
                    header.sender.kind
                )))
            }
        }
        WireEvent::Forwarded {
            header,
            case,
            envelope,
        } => {
            let inner = match forwarded_inner(ctx, envelope, *case) {
                Ok(e) => e,
                Err(d) => return Ok(Err(d)),
            };
            let Some(rules) = ctx.rules.get(&inner.rule_set) else {
                return Ok(Err(format!("unknown rule set {}", inner.rule_set)));
            };
            let Some(to) = &header.recipient else {
                return Ok(Err("a forward needs a recipient".into()));
            };
            ctx.cache.with_case(&ctx.journal, &ctx.rules, *case, |st| {
                let consent_forward = inner.body.kind() == EventKind::ConsentGranted;
                // A forwarded withdrawal, refusal or erasure is a notice:
                // rights must reach every agency holding the data, so it is
                // never blocked (not by closure, not by a refusal), like the
                // notice itself (`Sending::Notice`).
                let notice = waymark_policy::sending(inner.body.kind()) == Sending::Notice;
                match (&header.disclosure, consent_forward || notice) {
                    (None, true) => {}
                    (None, false) => {
                        return Err("a forward discloses the inner event and needs a basis".into());
                    }
                    (Some(_), _) if notice => {}
                    (Some(d), _) => {
                        let q = DisclosureQuery {
                            from: header.sender.id.clone(),
                            from_kind: header.sender.kind,
                            to: to.id.clone(),
                            to_kind: to.kind,
                            categories: inner.categories(),
                            purpose: d.purpose,
                            at: header.at,
                            basis: Some(d.basis.clone()),
                        };
                        if let Decision::Deny(v) = decide_disclosure(st, &q, rules) {
                            return Err(describe(&v));
                        }
                    }
                }
                st.apply(&inner, rules)
                    .map(|_| ())
                    .map_err(|v| describe(&v))
            })
        }
    }
}

/// Verifies a forwarded envelope with its originator's key and converts the
/// inner event, which must be a case event about `case`.
fn forwarded_inner(
    ctx: &Ctx,
    envelope: &[u8],
    case: CaseId,
) -> Result<waymark_policy::Event, String> {
    let env = Envelope::decode(envelope).map_err(|_| "inner envelope does not decode")?;
    let ev = PbEvent::decode(env.payload.as_slice()).map_err(|_| "inner event does not decode")?;
    let at = ev
        .occurred_at
        .as_ref()
        .map(timestamp_from_proto)
        .ok_or("inner occurred_at is missing")?;
    let owner = ctx
        .directory
        .verify(&env, PAYLOAD_TYPE_EVENT, at)
        .map_err(|r| format!("inner envelope: {} ({})", r.reason.as_str(), r.detail))?;
    if ev.sender_id != owner.as_str() {
        return Err(format!("inner event signed by {owner}, not its sender_id"));
    }
    let inner = event_from_proto(&ev)
        .map_err(|e| format!("inner event malformed: {e}"))?
        .into_event()
        .ok_or("only case events may be forwarded (no forwards of forwards or capacity)")?;
    if inner.case != case {
        return Err("inner event is about another case".into());
    }
    Ok(inner)
}
