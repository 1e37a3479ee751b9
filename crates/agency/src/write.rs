//! The write path every recording RPC takes: validate → look up the
//! idempotency key → build the event → `Bus::send_for_request` →
//! `RecordedEvent`.
//!
//! # Idempotency
//! Keys are scoped per agency (each agency has its own journal) and per RPC.
//! A call records its key as a *request record* `(rpc, key) → (event id,
//! request hash)` in the same journal commit as its event
//! (`Journal::append_originated_for_request`): the key and the event are
//! durable together or not at all, with no write of their own. So:
//! - a retry after success finds the record and returns the event it names
//!   with `replayed = true`, recording nothing;
//! - a retry after a refusal, a crash before the commit or
//!   `RESOURCE_EXHAUSTED` finds no record and runs the call again;
//! - two concurrent calls with one key: the journal commits one record and
//!   event, the other call waits for that commit and answers `replayed`;
//! - the same key with a different request is `INVALID_ARGUMENT`.
//!
//! Versions before request records reserved keys durably in the agency
//! store before journaling; those reservations are still honoured (read
//! only): a reserved key whose event was never journaled is recorded under
//! the reserved event id.
//!
//! # For agency-specific services
//! The five agency services (`services/*`) record through the same
//! [`Recorder`]: [`Recorder::record_case_event`] is the whole write path of
//! a pathway RPC; [`Recorder::event_with_send_to`] and
//! [`Recorder::agency_event`] build events for [`Recorder::record`]. Their
//! queries read this agency's own journal: [`Recorder::case_state`] (one
//! case's policy view) and [`Recorder::facts_after`] (every fact, in journal
//! order, to keep a read model in step).

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_bus::subjects::SubjectKind;
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::agency_kind_to_proto;
use waymark_policy::{CaseState, RuleSet};
use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::agency::Core;
use crate::common::{self, apply_send_to, case_info, field_map};
use crate::error::ApiError;
use crate::state::decode_event;
use crate::store::{IdemRecord, LocalStore};

/// Longest accepted idempotency key, in characters (requests.proto).
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The write path, shared with agency-specific services so they record
/// their events with the same idempotency, checks and error mapping.
#[derive(Clone)]
pub struct Recorder(pub(crate) Arc<Core>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("agency", &self.0.me)
            .finish()
    }
}

/// The result of a recording call.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What goes back to the client.
    pub recorded: pb::RecordedEvent,
}

impl Recorder {
    /// An event of this agency about `case` with `body`: id, sender, kind,
    /// time (now) and rule set filled in, no recipient.
    pub fn event(&self, id: EventId, case: CaseId, body: pb::event::Body) -> pb::Event {
        new_event(&self.0, id, case, body)
    }

    /// Records the event `build` makes from the reserved event id, under
    /// the idempotency key of `rpc`. `request` is hashed to detect a key
    /// reused for a different request; `fields` maps an event field path to
    /// the request's field for `INVALID_ARGUMENT` details.
    ///
    /// # Errors
    /// Any [`ApiError`]: the key is malformed or reused, `build` refuses,
    /// the bus refuses (rules, shape) or fails (journal, backpressure).
    pub async fn record(
        &self,
        rpc: &'static str,
        key: &str,
        request: &impl Message,
        build: impl FnOnce(EventId) -> Result<pb::Event, ApiError>,
        fields: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Recorded, ApiError> {
        record(&self.0, rpc, key, request, build, fields).await
    }

    /// This agency's id.
    pub fn agency(&self) -> &AgencyId {
        &self.0.me
    }

    /// The rule set this agency records new events under (checked to exist
    /// when the agency started), e.g. for defaults that depend on it.
    ///
    /// # Errors
    /// `INTERNAL` if the registry no longer holds it (a bug).
    pub fn rule_set(&self) -> Result<&RuleSet, ApiError> {
        self.0.rules.get(&self.0.rule_set).ok_or_else(|| {
            ApiError::Internal(format!("rule set {} is not loaded", self.0.rule_set))
        })
    }

    /// Like [`Recorder::event`], and when `send_to` is given, addressed to
    /// its recipient with its purpose, basis and shares (a disclosure the
    /// bus checks before anything is journaled). Without `send_to` the event
    /// stays in this agency's journal.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed recipient, `NOT_FOUND` for one the
    /// federation directory does not know, `FAILED_PRECONDITION`
    /// (`sealing.no_recipient_key`, `case.erased`) when `send_to.personal`
    /// cannot be sealed to the recipient.
    pub fn event_with_send_to(
        &self,
        id: EventId,
        case: CaseId,
        body: pb::event::Body,
        send_to: Option<&pb::SendTo>,
    ) -> Result<pb::Event, ApiError> {
        let mut e = new_event(&self.0, id, case, body);
        if let Some(s) = send_to {
            apply_send_to(&self.0, &mut e, Some(s))?;
        }
        Ok(e)
    }

    /// An agency-level event (empty `case_id`, no recipient), e.g.
    /// `capacity_updated`.
    pub fn agency_event(&self, id: EventId, body: pb::event::Body) -> pb::Event {
        let mut e = new_event(&self.0, id, CaseId::new(), body);
        e.case_id.clear();
        e
    }

    /// This agency's view of `case`: the policy state folded from its own
    /// journal (for reads and defaults; the bus checks every write again).
    ///
    /// # Errors
    /// `NOT_FOUND` when the journal holds nothing about the case;
    /// `UNAVAILABLE` when the journal cannot be read.
    pub async fn case_state(&self, case: CaseId) -> Result<CaseState, ApiError> {
        Ok(case_info(&self.0, case).await?.state.clone())
    }

    /// The one call behind an agency-specific recording RPC about a case:
    /// parses `case_id` (the request's field of that name), answers
    /// `NOT_FOUND` for a case this agency does not know, builds the event
    /// with `body` (and `send_to`, see [`Recorder::event_with_send_to`]) and
    /// records it under the idempotency key of `rpc` (see [`Recorder::record`]).
    /// Field paths in the bus's `INVALID_ARGUMENT` details are mapped to the
    /// request's: `body.<kind>.<field>` → `<field>` (every agency request
    /// names its fields as the body does), `basis...` → `send_to.basis...`.
    ///
    /// # Errors
    /// Any [`ApiError`]; rule violations are `FAILED_PRECONDITION` (or
    /// `PERMISSION_DENIED` for this agency's kind) naming the rule.
    pub async fn record_case_event(
        &self,
        rpc: &'static str,
        key: &str,
        request: &impl Message,
        case_id: &str,
        body: pb::event::Body,
        send_to: Option<&pb::SendTo>,
    ) -> Result<pb::RecordedEvent, ApiError> {
        let case = common::case_id("case_id", case_id)?;
        case_info(&self.0, case).await?;
        let token = SubjectKind::of_event(&pb::Event {
            body: Some(body.clone()),
            ..Default::default()
        })
        .map_or("", SubjectKind::as_str);
        let fields = move |path: &str| request_field(token, path);
        let (me, send_to) = (self.clone(), send_to.cloned());
        let done = record(
            &self.0,
            rpc,
            key,
            request,
            move |id| me.event_with_send_to(id, case, body, send_to.as_ref()),
            &fields,
        )
        .await?;
        Ok(done.recorded)
    }

    /// Facts in this agency's journal after seq `after`, reading at most
    /// `limit` entries: the events it originated or accepted, each with its
    /// seq, a forward replaced by the event it carries. Quarantined input,
    /// checkpoints and witness entries are skipped. Returns the facts and the
    /// seq of the last entry read (`after` when there is nothing new), from
    /// which to continue; for agency-specific read models kept in step with
    /// the journal.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the journal cannot be read.
    pub async fn facts_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, pb::Event)>, u64), ApiError> {
        blocking(&self.0, move |c| {
            let size = c.journal.size()?;
            let to = size.min(after.saturating_add(limit as u64));
            let mut out = Vec::new();
            for seq in after.saturating_add(1)..=to {
                let Some(bytes) = c.journal.entry(seq)? else {
                    continue;
                };
                let Ok(entry) = pb::JournalEntry::decode(bytes.as_slice()) else {
                    continue;
                };
                let fact = entry.kind == pb::EntryKind::Originated as i32
                    || entry.kind == pb::EntryKind::Received as i32;
                let Some(e) = fact.then(|| decode_event(&entry.envelope)).flatten() else {
                    continue;
                };
                let e = match &e.body {
                    Some(pb::event::Body::Forwarded(f)) => match decode_event(&f.envelope) {
                        Some(inner) => inner,
                        None => continue,
                    },
                    _ => e,
                };
                out.push((seq, e));
            }
            Ok((out, to.max(after)))
        })
        .await
    }
}

/// The request field of an event field path, for a request whose fields
/// are named as the body `body.<token>`'s (see [`Recorder::record_case_event`]).
fn request_field(token: &str, path: &str) -> Option<String> {
    let f = field_map("body", "")(path)?;
    Some(
        match f.strip_prefix(token).and_then(|r| r.strip_prefix('.')) {
            Some(rest) if !token.is_empty() && !rest.is_empty() => rest.to_owned(),
            _ => f,
        },
    )
}

pub(crate) fn new_event(
    core: &Core,
    id: EventId,
    case: CaseId,
    body: pb::event::Body,
) -> pb::Event {
    pb::Event {
        event_id: id.to_string(),
        case_id: case.to_string(),
        sender_id: core.me.to_string(),
        sender_kind: agency_kind_to_proto(core.kind) as i32,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: core.rule_set.to_string(),
        body: Some(body),
        ..Default::default()
    }
}

/// Most journal entries a read may handle on an async thread ([`small`]).
pub(crate) const SMALL_READ: u64 = 32;

/// Runs blocking store or journal work off the async threads: scans, folds
/// of a whole case, anything that waits for a commit.
pub(crate) async fn blocking<T: Send + 'static>(
    core: &Arc<Core>,
    f: impl FnOnce(&Core) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let c = core.clone();
    tokio::task::spawn_blocking(move || f(&c))
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))?
}

/// Runs small, bounded store or journal work on the calling (async) thread:
/// a few point reads and unflushed writes of sled trees, or reading at most
/// [`SMALL_READ`] entries. Such work takes microseconds when sled has the
/// pages cached, as it has for the recent entries these calls touch; a hop
/// to the blocking pool and back costs more than that, and its two context
/// switches were the largest single cost of an agency under load on two
/// cores (`BENCHMARKS.md`, P1). A page sled must read from disk stalls this
/// thread for one read, which the runtime's other workers absorb.
pub(crate) fn small<T>(
    core: &Core,
    f: impl FnOnce(&Core) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    f(core)
}

/// Reads journal entries `from+1..=to` with `read`: here ([`small`]) when
/// they are at most [`SMALL_READ`], else on a blocking thread.
pub(crate) async fn read_entries<T: Send + 'static>(
    core: &Arc<Core>,
    from: u64,
    to: u64,
    read: impl FnOnce(&Core, u64, u64) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if to - from <= SMALL_READ {
        small(core, |c| read(c, from, to))
    } else {
        blocking(core, move |c| read(c, from, to)).await
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid(
            "idempotency_key",
            "required: a string you generate per business action (e.g. a UUID), reused on retries",
        ));
    }
    if key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(
            "idempotency_key",
            format!("at most {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    Ok(())
}

pub(crate) async fn record(
    core: &Arc<Core>,
    rpc: &'static str,
    key: &str,
    request: &impl Message,
    build: impl FnOnce(EventId) -> Result<pb::Event, ApiError>,
    fields: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Recorded, ApiError> {
    check_key(key)?;
    let _permit = core.writes.try_acquire().map_err(|_| {
        ApiError::Exhausted(format!(
            "{} writes are in flight at this agency; retry with the same idempotency key",
            core.settings.max_pending_writes
        ))
    })?;
    let hash = hex(&Sha256::digest(request.encode_to_vec()));
    let request_key = LocalStore::idem_key(rpc, key);
    // A call with this key before: its answer is the event it recorded.
    let earlier = earlier_call(core, rpc, key, &request_key, &hash)?;
    if let Some((id, _)) = earlier
        && let Some(recorded) = lookup(core, id, true).await?
    {
        return Ok(Recorded { recorded });
    }
    if let Some((id, Earlier::Legacy)) = earlier {
        // Reserved by an older version, never journaled (refused, or it
        // stopped in between): record it now, under the reserved id.
        let sent = core
            .bus
            .send(build(id)?)
            .await
            .map_err(|e| ApiError::from_send(e, fields))?;
        core.grew(sent.seq);
        let recorded = lookup(core, id, !sent.new)
            .await?
            .ok_or_else(|| ApiError::Internal("a sent event is not in the journal".into()))?;
        return Ok(Recorded { recorded });
    }
    // New (or a concurrent call with this key is committing: the journal
    // then answers with that call's entry once it is durable).
    let id = EventId::new();
    let value = serde_json::to_vec(&IdemRecord {
        event_id: id.to_string(),
        request_hash: hash.clone(),
        extra: Vec::new(),
    })
    .map_err(|e| ApiError::Internal(format!("encoding a request record: {e}")))?;
    let sent = core
        .bus
        .send_for_request(build(id)?, request_key.clone(), value)
        .await
        .map_err(|e| ApiError::from_send(e, fields))?;
    core.grew(sent.seq);
    if let Some(hash) = sent.entry_hash {
        // Recorded now: the answer is known without reading it back.
        return Ok(Recorded {
            recorded: pb::RecordedEvent {
                event_id: id.to_string(),
                journal_seq: sent.seq,
                entry_hash: hash.to_vec(),
                replayed: false,
            },
        });
    }
    let id = if sent.new {
        id
    } else {
        earlier_call(core, rpc, key, &request_key, &hash)?.map_or(id, |(other, _)| other)
    };
    let recorded = lookup(core, id, !sent.new)
        .await?
        .ok_or_else(|| ApiError::Internal("a sent event is not in the journal".into()))?;
    Ok(Recorded { recorded })
}

/// Where an earlier call's record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Earlier {
    /// In the journal, committed with its entry (or being committed).
    Journal,
    /// In the agency store, reserved by a version before request records.
    Legacy,
}

/// The event an earlier call with `key` recorded, if there was one; the
/// same key with a different request is refused (`INVALID_ARGUMENT`).
fn earlier_call(
    core: &Arc<Core>,
    rpc: &'static str,
    key: &str,
    request_key: &[u8],
    hash: &str,
) -> Result<Option<(EventId, Earlier)>, ApiError> {
    let (k, rk, want) = (key, request_key, hash);
    // Two point reads: the journal's request record, the store's legacy
    // reservation.
    small(core, move |c| {
        let found = match c.journal.request_record(rk)? {
            Some(r) => Some((
                serde_json::from_slice::<IdemRecord>(&r.value).map_err(|_| {
                    ApiError::Internal("a journaled request record is corrupt".into())
                })?,
                Earlier::Journal,
            )),
            None => c.store.legacy_idem(rpc, k)?.map(|r| (r, Earlier::Legacy)),
        };
        let Some((record, from)) = found else {
            return Ok(None);
        };
        if record.request_hash != want {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!(
                    "already used for a different {rpc} request; use a new key for a new action"
                ),
            ));
        }
        let id = EventId::parse(&record.event_id)
            .map_err(|_| ApiError::Internal("a stored idempotency record is corrupt".into()))?;
        Ok(Some((id, from)))
    })
}

/// The `RecordedEvent` of `id` if the journal holds it.
pub(crate) async fn lookup(
    core: &Arc<Core>,
    id: EventId,
    replayed: bool,
) -> Result<Option<pb::RecordedEvent>, ApiError> {
    blocking(core, move |c| {
        let Some(seq) = c.journal.event_seq(&id)? else {
            return Ok(None);
        };
        let bytes = c
            .journal
            .entry(seq)?
            .ok_or_else(|| ApiError::Internal(format!("indexed entry {seq} is missing")))?;
        Ok(Some(pb::RecordedEvent {
            event_id: id.to_string(),
            journal_seq: seq,
            entry_hash: waymark_journal::merkle::leaf_hash(&bytes).to_vec(),
            replayed,
        }))
    })
    .await
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_request_fields_are_named_as_the_body() {
        let f = |p| request_field("signal_received", p);
        assert_eq!(
            f("body.signal_received.channel").as_deref(),
            Some("channel")
        );
        assert_eq!(
            f("body.signal_received.forms[1]").as_deref(),
            Some("forms[1]")
        );
        assert_eq!(f("case_id").as_deref(), Some("case_id"));
        assert_eq!(
            f("basis.legal.justification").as_deref(),
            Some("send_to.basis.legal.justification")
        );
        assert_eq!(f("purpose").as_deref(), Some("send_to.purpose"));
        assert_eq!(f("occurred_at"), None, "kept as event.occurred_at");
    }
}
