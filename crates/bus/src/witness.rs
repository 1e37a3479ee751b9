//! Checkpoint witnessing.
//!
//! - Announce: every `checkpoint_interval` the journal may sign a checkpoint
//!   ([`Journal::maybe_checkpoint`](waymark_journal::Journal::maybe_checkpoint));
//!   each new one is published on `waymark.v1.ckpt.<me>` as a
//!   `CheckpointAnnouncement` with a consistency proof from the previously
//!   announced one. The latest is announced again at start (idempotent).
//! - Witness: a durable consumer per agency on `waymark.v1.ckpt.*` (own ones
//!   skipped). Each checkpoint is verified with its agency's key and against
//!   the checkpoints already seen from that agency (the journal's
//!   CHECKPOINT_WITNESSED entries are the durable record, re-read at start):
//!   same size with another root, or a failed consistency proof, is journaled
//!   as EQUIVOCATION with both envelopes and counted; otherwise it is
//!   journaled as CHECKPOINT_WITNESSED and a signed Cosignature is published
//!   on `waymark.v1.cosig.<me>.<agency>`.
//! - Collect: a durable consumer on `waymark.v1.cosig.*.<me>` stores
//!   cosignatures of this agency's checkpoints in its journal.
//!
//! A malformed or unverifiable checkpoint or cosignature is journaled as
//! quarantined, like a bad event. Messages are acked after the journal step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use futures::StreamExt;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use waymark_crypto::{proto_from_timestamp, sign_envelope, timestamp_from_proto};
use waymark_journal::JournalError;
use waymark_journal::merkle::verify_consistency;
use waymark_proto::v1::{
    Checkpoint, CheckpointAnnouncement, Cosignature, EntryKind, Envelope, Equivocation,
    JournalEntry,
};
use waymark_proto::{PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_COSIGNATURE};
use waymark_types::{AgencyId, Timestamp};

use crate::Ctx;
use crate::config::Backoff;
use crate::error::{BusError, broker};
use crate::quarantine::{self, Reason, Rejection};
use crate::{provision, subjects};

pub(crate) async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    tokio::join!(
        announce(ctx.clone(), cancel.clone()),
        consume(ctx.clone(), cancel.clone(), Kind::Checkpoints),
        consume(ctx, cancel, Kind::Cosignatures),
    );
}

async fn announce(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut last: u64 = 0;
    let mut unpublished: Option<Envelope> = None;
    let c = ctx.clone();
    if let Ok(Ok(Some(env))) =
        tokio::task::spawn_blocking(move || c.journal.latest_checkpoint()).await
    {
        unpublished = Some(env);
    }
    loop {
        if unpublished.is_none() {
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || c.journal.maybe_checkpoint(Timestamp::now()))
                .await
            {
                Ok(Ok(env)) => unpublished = env,
                Ok(Err(e)) => tracing::warn!(error = %e, "signing a checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
            }
        }
        if let Some(env) = unpublished.take() {
            match publish_announcement(&ctx, &env, last).await {
                Ok(size) => last = size,
                Err(e) => {
                    tracing::warn!(error = %e, "announcing a checkpoint failed; will retry");
                    unpublished = Some(env);
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(ctx.config.checkpoint_interval) => {}
        }
    }
}

async fn publish_announcement(ctx: &Arc<Ctx>, env: &Envelope, last: u64) -> Result<u64, BusError> {
    let cp = Checkpoint::decode(env.payload.as_slice()).map_err(|e| BusError::Journal {
        step: "decoding our own checkpoint",
        source: JournalError::Failed(e.to_string()),
    })?;
    let size = cp.size;
    let consistency = if last > 0 && last < size {
        let c = ctx.clone();
        Some(
            tokio::task::spawn_blocking(move || c.journal.consistency_proof(last, size))
                .await
                .map_err(BusError::Task)?
                .map_err(|source| BusError::Journal {
                    step: "building a consistency proof",
                    source,
                })?,
        )
    } else {
        None
    };
    let ann = CheckpointAnnouncement {
        checkpoint: Some(env.clone()),
        consistency,
    };
    let me = &ctx.config.agency;
    let msg = PublishMessage::build()
        .payload(ann.encode_to_vec().into())
        .message_id(format!("ckpt-{me}-{size}"));
    let publish = async {
        ctx.js
            .send_publish(subjects::checkpoint(me), msg)
            .await
            .map_err(broker)?
            .await
            .map_err(broker)
    };
    if let Err(source) = publish.await {
        provision::provision(&ctx.js, &ctx.config).await?;
        return Err(BusError::Provision {
            stream: provision::CHECKPOINT_STREAM.into(),
            source,
        });
    }
    Ok(size)
}

#[derive(Clone, Copy)]
enum Kind {
    Checkpoints,
    Cosignatures,
}

async fn consume(ctx: Arc<Ctx>, cancel: CancellationToken, kind: Kind) {
    let mut backoff = Backoff::new(ctx.config.backoff);
    let c = ctx.clone();
    let mut seen = tokio::task::spawn_blocking(move || load_seen(&c))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    while !cancel.is_cancelled() {
        if let Err(e) = session(&ctx, &cancel, kind, &mut seen).await {
            tracing::warn!(error = %e, "witness session ended; reconnecting");
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(backoff.fail()) => {}
            }
        }
    }
}

/// Checkpoints seen per agency: size → checkpoint envelope.
type Seen = HashMap<AgencyId, BTreeMap<u64, Envelope>>;

fn load_seen(ctx: &Ctx) -> Result<Seen, JournalError> {
    // Witnessed checkpoints are about no case: read through the journal's
    // index of such entries. (Walking the whole journal here made an agency
    // with a million entries read all of them at every start, and held
    // hundreds of MB afterwards; benchmark P5.)
    let mut seen = Seen::new();
    let mut after = 0;
    loop {
        let page = ctx.journal.uncased_entries(after, 1024)?;
        let Some(last) = page.last().map(|(s, _)| *s) else {
            return Ok(seen);
        };
        for (_, b) in page {
            let Ok(e) = JournalEntry::decode(b.as_slice()) else {
                continue;
            };
            if e.kind != EntryKind::CheckpointWitnessed as i32 {
                continue;
            }
            if let Some((a, cp, env)) = decode_checkpoint(&e.envelope) {
                seen.entry(a).or_default().insert(cp.size, env);
            }
        }
        after = last;
    }
}

fn decode_checkpoint(bytes: &[u8]) -> Option<(AgencyId, Checkpoint, Envelope)> {
    let env = Envelope::decode(bytes).ok()?;
    let cp = Checkpoint::decode(env.payload.as_slice()).ok()?;
    Some((AgencyId::new(&cp.agency_id).ok()?, cp, env))
}

async fn session(
    ctx: &Arc<Ctx>,
    cancel: &CancellationToken,
    kind: Kind,
    seen: &mut Seen,
) -> Result<(), BusError> {
    let me = &ctx.config.agency;
    let stream =
        provision::ensure_stream(&ctx.js, provision::checkpoint_stream(&ctx.config)).await?;
    let spec = match kind {
        Kind::Checkpoints => provision::witness_durable(me),
        Kind::Cosignatures => provision::cosig_durable(me),
    };
    let name = spec.name.clone();
    let consumer = provision::durable(&stream, &ctx.config, spec.name, spec.filter).await?;
    let mut messages = consumer
        .stream()
        .heartbeat(Duration::from_secs(1))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| BusError::Messages {
            consumer: name.clone(),
            source: broker(e),
        })?;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                return Err(BusError::Messages {
                    consumer: name,
                    source: broker(e),
                });
            }
            None => {
                return Err(BusError::Messages {
                    consumer: name,
                    source: "ended".into(),
                });
            }
        };
        let subject = msg.subject.to_string();
        let payload = msg.payload.clone();
        let result = match kind {
            Kind::Checkpoints => witness(ctx, &subject, &payload, seen).await,
            Kind::Cosignatures => collect(ctx, &subject, &payload).await,
        };
        match result {
            Ok(()) => {
                let _ = msg.ack().await;
            }
            Err(e) => tracing::warn!(error = %e, "witness step failed; message will come again"),
        }
    }
}

fn quarantine(
    ctx: &Ctx,
    rej: &Rejection,
    subject: &str,
    payload: &[u8],
) -> Result<(), JournalError> {
    ctx.journal
        .append_quarantined(quarantine::record(rej, subject, payload), Timestamp::now())?;
    ctx.counters.quarantined(rej.reason);
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(BusError::Task)?
        .map_err(|source| BusError::Journal {
            step: "journaling a witness record",
            source,
        })
}

async fn witness(
    ctx: &Arc<Ctx>,
    subject: &str,
    payload: &[u8],
    seen: &mut Seen,
) -> Result<(), BusError> {
    let me = &ctx.config.agency;
    let Some(subjects::Subject::Checkpoint { agency }) = subjects::parse(subject) else {
        return Ok(());
    };
    if agency == *me {
        return Ok(());
    }
    let (c, s, p) = (ctx.clone(), subject.to_owned(), payload.to_vec());
    let bad = move |reason, detail: String| {
        blocking(move || quarantine(&c, &Rejection::new(reason, detail), &s, &p))
    };
    let Ok(ann) = CheckpointAnnouncement::decode(payload) else {
        return bad(Reason::Malformed, "not a CheckpointAnnouncement".into()).await;
    };
    let Some(env) = ann.checkpoint else {
        return bad(Reason::Malformed, "announcement without checkpoint".into()).await;
    };
    let Ok(cp) = Checkpoint::decode(env.payload.as_slice()) else {
        return bad(Reason::Malformed, "payload is not a Checkpoint".into()).await;
    };
    let at = cp.time.as_ref().map_or(Timestamp(0), timestamp_from_proto);
    match ctx.directory.verify(&env, PAYLOAD_TYPE_CHECKPOINT, at) {
        Ok(owner) if owner == agency && cp.agency_id == agency.as_str() => {}
        Ok(owner) => {
            return bad(
                Reason::SubjectMismatch,
                format!("signed by {owner} on {agency}'s subject"),
            )
            .await;
        }
        Err(r) => return bad(r.reason, r.detail).await,
    }
    let known = seen.entry(agency.clone()).or_default();
    let conflict = if let Some(prev) = known.get(&cp.size) {
        let prev_cp = Checkpoint::decode(prev.payload.as_slice()).unwrap_or_default();
        if prev_cp.root_hash == cp.root_hash {
            return Ok(()); // Already witnessed.
        }
        Some((prev.clone(), format!("two roots for size {}", cp.size)))
    } else if let Some(proof) = ann.consistency.as_ref().filter(|p| p.old_size > 0) {
        match known.get(&proof.old_size) {
            Some(old) => {
                let old_cp = Checkpoint::decode(old.payload.as_slice()).unwrap_or_default();
                verify_consistency(
                    proof.old_size,
                    cp.size,
                    &old_cp.root_hash,
                    &cp.root_hash,
                    &proof.hashes,
                )
                .err()
                .map(|e| {
                    (
                        old.clone(),
                        format!("not consistent with size {}: {e}", proof.old_size),
                    )
                })
            }
            None => None,
        }
    } else {
        None
    };
    if let Some((first, detail)) = conflict {
        tracing::error!(%agency, %detail, "checkpoint equivocation");
        let ev = Equivocation {
            agency_id: agency.to_string(),
            first: Some(first),
            second: Some(env),
            detail,
        };
        let c = ctx.clone();
        blocking(move || c.journal.append_equivocation(ev, Timestamp::now())).await?;
        ctx.counters.equivocation();
        return Ok(());
    }
    let (c, bytes) = (ctx.clone(), env.encode_to_vec());
    blocking(move || c.journal.append_witnessed(&bytes, Timestamp::now())).await?;
    known.insert(cp.size, env.clone());
    let cosig = Cosignature {
        witness_agency_id: me.to_string(),
        checkpoint_hash: Sha256::digest(&env.payload).to_vec(),
        agency_id: agency.to_string(),
        size: cp.size,
        root_hash: cp.root_hash,
        witnessed_at: Some(proto_from_timestamp(Timestamp::now())),
    };
    let signed = sign_envelope(&ctx.key, PAYLOAD_TYPE_COSIGNATURE, cosig.encode_to_vec());
    let msg = PublishMessage::build()
        .payload(signed.encode_to_vec().into())
        .message_id(format!("cosig-{me}-{agency}-{}", cp.size));
    let ack = ctx
        .js
        .send_publish(subjects::cosignature(me, &agency), msg)
        .await
        .map_err(|e| BusError::Provision {
            stream: provision::CHECKPOINT_STREAM.into(),
            source: broker(e),
        })?;
    ack.await.map_err(|e| BusError::Provision {
        stream: provision::CHECKPOINT_STREAM.into(),
        source: broker(e),
    })?;
    Ok(())
}

async fn collect(ctx: &Arc<Ctx>, subject: &str, payload: &[u8]) -> Result<(), BusError> {
    let Some(subjects::Subject::Cosignature { witness, .. }) = subjects::parse(subject) else {
        return Ok(());
    };
    let (c, s, p) = (ctx.clone(), subject.to_owned(), payload.to_vec());
    blocking(move || {
        let rej = match Envelope::decode(p.as_slice()) {
            Err(_) => Rejection::new(Reason::Malformed, "not an Envelope"),
            Ok(env) => {
                let ring = c.directory.all_keys(&[&witness]);
                match c.journal.add_cosignature(&env, &ring) {
                    Ok(()) => return Ok(()),
                    Err(JournalError::BadCosignature(d)) => Rejection::new(Reason::BadSignature, d),
                    Err(e) => return Err(e),
                }
            }
        };
        quarantine(&c, &rej, &s, &p)
    })
    .await
}
