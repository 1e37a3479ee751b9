//! The write path every recording RPC takes: validate → reserve the
//! idempotency key → build the event → `Bus::send` → `RecordedEvent`.
//!
//! # Idempotency
//! Keys are scoped per agency (each agency has its own store) and per RPC.
//! The first call reserves `(rpc, key) → (fresh event id, request hash)`
//! durably *before* anything is journaled; every call with that key then
//! uses the reserved event id. So:
//! - a retry after success finds the event in the journal (the journal's
//!   fsynced event index is the source of truth) and returns it with
//!   `replayed = true`, recording nothing;
//! - a retry after a refusal, a crash or `RESOURCE_EXHAUSTED` runs the call
//!   again with the same event id (nothing was journaled under it);
//! - two concurrent calls with one key send the same event id, and the
//!   journal's dedup by event id keeps one (the other answers `replayed`);
//! - the same key with a different request is `INVALID_ARGUMENT`.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::agency_kind_to_proto;
use waymark_proto::v1 as pb;
use waymark_types::{CaseId, EventId, Timestamp};

use crate::agency::Core;
use crate::error::ApiError;
use crate::store::IdemRecord;

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

/// Runs blocking store or journal work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    core: &Arc<Core>,
    f: impl FnOnce(&Core) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let c = core.clone();
    tokio::task::spawn_blocking(move || f(&c))
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))?
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
    let fresh = IdemRecord {
        event_id: EventId::new().to_string(),
        request_hash: hex(&Sha256::digest(request.encode_to_vec())),
        extra: Vec::new(),
    };
    let k = key.to_owned();
    let want = fresh.request_hash.clone();
    let idem = blocking(core, move |c| Ok(c.store.reserve(rpc, &k, &fresh)?)).await?;
    if idem.request_hash != want {
        return Err(ApiError::invalid(
            "idempotency_key",
            format!("already used for a different {rpc} request; use a new key for a new action"),
        ));
    }
    let id = EventId::parse(&idem.event_id)
        .map_err(|_| ApiError::Internal("a stored idempotency record is corrupt".into()))?;
    if let Some(recorded) = lookup(core, id, true).await? {
        return Ok(Recorded { recorded });
    }
    let event = build(id)?;
    let sent = core
        .bus
        .send(event)
        .await
        .map_err(|e| ApiError::from_send(e, fields))?;
    core.grew(sent.seq);
    let recorded = lookup(core, id, !sent.new)
        .await?
        .ok_or_else(|| ApiError::Internal("a sent event is not in the journal".into()))?;
    Ok(Recorded { recorded })
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
