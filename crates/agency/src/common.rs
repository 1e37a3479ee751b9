//! Helpers the services share: request fields, `SendTo`, event references,
//! case lookups, and mapping event field paths to request fields.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_policy::wire::vocab::{agency_kind_from_proto, agency_kind_to_proto};
use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, CaseId, EventId};

use crate::agency::Core;
use crate::error::ApiError;
use crate::state::{CaseInfo, decode_event};
use crate::write::{SMALL_READ, blocking, small};

/// Parses a case id field.
pub(crate) fn case_id(field: &str, s: &str) -> Result<CaseId, ApiError> {
    CaseId::parse(s).map_err(|_| {
        ApiError::invalid(
            field,
            "must be a case id: a lowercase hyphenated UUID as returned by OpenCase",
        )
    })
}

/// Parses an event id field (consent, referral, handover, event ids).
pub(crate) fn event_id(field: &str, s: &str) -> Result<EventId, ApiError> {
    EventId::parse(s).map_err(|_| {
        ApiError::invalid(field, "must be a lowercase hyphenated UUID (36 characters)")
    })
}

/// The caught-up view of `case`, or `NOT_FOUND`.
pub(crate) async fn case_info(core: &Arc<Core>, case: CaseId) -> Result<Arc<CaseInfo>, ApiError> {
    // A cached view a few entries behind catches up here; a case not cached
    // (folded from its first entry) or far behind goes to a blocking thread.
    let cached = small(core, |c| {
        Ok(c.cases
            .get_cached(&c.journal, &c.rules, case, SMALL_READ as usize)?)
    })?;
    if let Some(info) = cached {
        return Ok(info);
    }
    blocking(core, move |c| {
        c.cases
            .get(&c.journal, &c.rules, case)?
            .ok_or_else(|| ApiError::NotFound {
                what: "case",
                id: case.to_string(),
            })
    })
    .await
}

/// A journaled event: its reference (hash of the envelope as journaled),
/// the decoded event and the envelope bytes.
#[derive(Debug, Clone)]
pub(crate) struct Journaled {
    pub(crate) reference: pb::EventRef,
    pub(crate) event: pb::Event,
    pub(crate) envelope: Vec<u8>,
}

/// Looks up `id` in this agency's journal; `NOT_FOUND` as `what` if absent or
/// about another case.
pub(crate) async fn journaled(
    core: &Arc<Core>,
    id: EventId,
    case: CaseId,
    what: &'static str,
) -> Result<Journaled, ApiError> {
    let nf = move || ApiError::NotFound {
        what,
        id: id.to_string(),
    };
    blocking(core, move |c| find(c, id, case)?.ok_or_else(nf)).await
}

/// Finds event `id` of `case`: through the journal's event index, or (for an
/// event this agency received inside a forward, which the index does not
/// name) among the case's forwarded entries.
pub(crate) fn find(c: &Core, id: EventId, case: CaseId) -> Result<Option<Journaled>, ApiError> {
    let want = id.to_string();
    let make = |event: pb::Event, envelope: Vec<u8>| Journaled {
        reference: pb::EventRef {
            event_id: want.clone(),
            envelope_hash: Sha256::digest(&envelope).to_vec(),
        },
        event,
        envelope,
    };
    if let Some(seq) = c.journal.event_seq(&id)? {
        let Some(bytes) = c.journal.entry(seq)? else {
            return Ok(None);
        };
        let entry = pb::JournalEntry::decode(bytes.as_slice())
            .map_err(|_| ApiError::Internal(format!("entry {seq} does not decode")))?;
        return Ok(decode_event(&entry.envelope)
            .filter(|e| e.case_id == case.to_string())
            .map(|e| make(e, entry.envelope)));
    }
    let mut after = 0;
    loop {
        let page = c.journal.case_entries(&case, after, 512)?;
        let Some(last) = page.last().map(|(s, _)| *s) else {
            return Ok(None);
        };
        for (_, bytes) in page {
            let Ok(entry) = pb::JournalEntry::decode(bytes.as_slice()) else {
                continue;
            };
            if let Some(pb::Event {
                body: Some(pb::event::Body::Forwarded(f)),
                ..
            }) = decode_event(&entry.envelope)
                && let Some(inner) = decode_event(&f.envelope).filter(|i| i.event_id == want)
            {
                return Ok(Some(make(inner, f.envelope)));
            }
        }
        after = last;
    }
}

/// Sets the recipient, purpose, basis and shares of `e` from `send_to`, and
/// seals `send_to.personal` to the recipient (`crate::sealing`). Refuses
/// recipients the directory does not know; fills an unset recipient kind
/// from the directory. `e` must have its event id and case set.
pub(crate) fn apply_send_to(
    core: &Core,
    e: &mut pb::Event,
    send_to: Option<&pb::SendTo>,
) -> Result<(), ApiError> {
    let Some(s) = send_to else {
        return Err(ApiError::invalid(
            "send_to",
            "required: the recipient agency, purpose and disclosure basis",
        ));
    };
    let to = AgencyId::new(&s.recipient_id).map_err(|_| {
        ApiError::invalid(
            "send_to.recipient_id",
            "must be an agency id, e.g. bg-shelter-sofia",
        )
    })?;
    let known = core.directory.kind(&to).ok_or_else(|| ApiError::NotFound {
        what: "agency",
        id: to.to_string(),
    })?;
    if s.recipient_kind != 0 && agency_kind_from_proto(s.recipient_kind).ok() != Some(known) {
        return Err(ApiError::invalid(
            "send_to.recipient_kind",
            format!("{to} is a {known} agency in the federation directory"),
        ));
    }
    e.recipient_id = to.to_string();
    e.recipient_kind = agency_kind_to_proto(known) as i32;
    e.purpose = s.purpose;
    e.basis = s.basis.clone();
    e.shares = s.shares.clone();
    if let Some(p) = s
        .personal
        .as_ref()
        .filter(|p| **p != pb::PersonalData::default())
    {
        crate::sealing::seal_personal(core, e, &to, p)?;
    }
    Ok(())
}

/// Addresses a reply to `to` (no basis: replies and notices need none).
pub(crate) fn reply_to(e: &mut pb::Event, to: &str, kind: i32) {
    e.recipient_id = to.to_owned();
    e.recipient_kind = kind;
}

/// Maps an event field path to the request field it came from: the header
/// fields set from `SendTo`, `case_id`, and the body under `body_prefix`
/// (e.g. `body.consent_granted`) to `request_prefix` (e.g. `consent`, or ""
/// when the body's fields are the request's own).
pub(crate) fn field_map(
    body_prefix: &'static str,
    request_prefix: &'static str,
) -> impl Fn(&str) -> Option<String> + Sync {
    move |path: &str| {
        if path == "case_id" {
            return Some("case_id".into());
        }
        for f in [
            "recipient_id",
            "recipient_kind",
            "purpose",
            "basis",
            "shares",
        ] {
            if path.starts_with(f) {
                return Some(format!("send_to.{path}"));
            }
        }
        let rest = path.strip_prefix(body_prefix)?;
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        Some(match (request_prefix.is_empty(), rest.is_empty()) {
            (true, _) => rest.to_owned(),
            (false, true) => request_prefix.to_owned(),
            (false, false) => format!("{request_prefix}.{rest}"),
        })
        .filter(|s| !s.is_empty())
    }
}

/// A two-party process (referral, handover) whose answers go to the other
/// party: what it is called in errors and field paths, and the rule named
/// when an agency tries to answer its own step.
pub(crate) struct Process {
    /// `"referral"` or `"handover"`, for NOT_FOUND.
    pub(crate) what: &'static str,
    /// Request field holding the process id (`"handover_id"`).
    pub(crate) id_field: &'static str,
    /// Event field path segment of the reference to the opening event
    /// (`".offer"`), mapped back to `id_field` in INVALID_ARGUMENT details.
    pub(crate) ref_segment: &'static str,
    /// (rule code, who may) when an answer meant for the recipient of the
    /// opening event would go to this agency itself.
    pub(crate) only_opener: (&'static str, &'static str),
    /// (rule code, who may) when an answer meant for the opener would go to
    /// this agency itself.
    pub(crate) only_recipient: (&'static str, &'static str),
}

/// Records an answer to the process opened by event `id` of `case` (already
/// checked to exist in this agency's view), addressed to the other party:
/// to the opener's recipient with `to_recipient` (a cancellation), else to
/// the opener. The body embeds the opening event's reference.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer_process(
    core: &Arc<Core>,
    p: &'static Process,
    rpc: &'static str,
    key: &str,
    request: &impl Message,
    case: CaseId,
    id: EventId,
    to_recipient: bool,
    make: impl FnOnce(pb::EventRef) -> pb::event::Body + Send + 'static,
) -> Result<pb::RecordedEvent, ApiError> {
    let opening = blocking(core, move |c| find(c, id, case))
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: p.what,
            id: id.to_string(),
        })?;
    let (to, kind) = if to_recipient {
        (
            opening.event.recipient_id.clone(),
            opening.event.recipient_kind,
        )
    } else {
        (opening.event.sender_id.clone(), opening.event.sender_kind)
    };
    if to == core.me.as_str() {
        // Answering one's own step: name the rule, not the addressing.
        let (code, who) = if to_recipient {
            p.only_opener
        } else {
            p.only_recipient
        };
        return Err(ApiError::precondition(
            code,
            format!("Only {who} may take this step on {} {id}.", p.what),
        ));
    }
    let c = core.clone();
    let reference = opening.reference;
    let done = crate::write::record(
        core,
        rpc,
        key,
        request,
        move |eid| {
            let mut e = crate::write::new_event(&c, eid, case, make(reference));
            reply_to(&mut e, &to, kind);
            Ok(e)
        },
        &|path: &str| {
            if path.contains(p.ref_segment) {
                return Some(p.id_field.to_owned());
            }
            path.rsplit('.')
                .next()
                .filter(|f| *f == "reason" || *f == "detail")
                .map(str::to_owned)
        },
    )
    .await?;
    Ok(done.recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_paths_map_to_request_fields() {
        let m = field_map("body.consent_granted", "consent");
        assert_eq!(m("case_id").as_deref(), Some("case_id"));
        assert_eq!(
            m("basis.legal.basis").as_deref(),
            Some("send_to.basis.legal.basis")
        );
        assert_eq!(
            m("body.consent_granted.valid_until").as_deref(),
            Some("consent.valid_until")
        );
        assert_eq!(m("body.case_opened.channel"), None);
        let m = field_map("body.case_opened", "");
        assert_eq!(m("body.case_opened.channel").as_deref(), Some("channel"));
    }
}
