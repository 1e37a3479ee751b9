//! The inbox: one durable pull consumer per agency on
//! `waymark.v1.evt.*.<me>.*`, explicit acks, bounded `max_ack_pending`.
//!
//! Messages are handled in ready batches, in stream order. A message on a
//! `batch` subject is unpacked into its events ([`crate::batch`]); every
//! event is then a unit of its own:
//! 1. stateless checks ([`crate::check::parse`], [`crate::check::authenticate_parsed`]: envelope, signature,
//!    subject, shape), in parallel, while the previous batch is still in
//!    steps 2–4 (pipelined);
//! 2. stateful checks ([`crate::check::decide`]: receipt target, dedup,
//!    sealed data, the rules), one unit after the other, so the case states
//!    see events in order; this starts only once the previous batch ended;
//! 3. the journal step, for all units in one commit: RECEIVED (dedup by
//!    event id) and its receipt, or QUARANTINED (and a QUARANTINED receipt
//!    when the sender is authentic), staged in order, then one wait for the
//!    last (commits are durable in order);
//! 4. acks, only for messages all of whose units are durable. A unit that
//!    failed is retried (its message nak'ed, with every later unit of its
//!    case) and its case dropped from the cache.
//!
//! Any consumer error (broker restart, stream deleted) ends the session; the
//! next one re-provisions the stream and consumer after a backoff.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::Message;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use waymark_journal::{Appended, JournalError};
use waymark_proto::v1::ReceiptStatus;
use waymark_types::{CaseId, EventId, Timestamp};

use crate::Ctx;
use crate::check::{self, Checked};
use crate::config::Backoff;
use crate::error::{BusError, broker};
use crate::quarantine::{Reason, Rejection};
use crate::{provision, quarantine, receipt, trace};

pub(crate) async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(ctx.config.backoff);
    while !cancel.is_cancelled() {
        match session(&ctx, &cancel, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "inbox session ended; reconnecting");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff.fail()) => {}
                }
            }
        }
    }
}

async fn session(
    ctx: &Arc<Ctx>,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), BusError> {
    let stream = provision::ensure_stream(&ctx.js, provision::event_stream(&ctx.config)).await?;
    let spec = provision::inbox_durable(&ctx.config.agency);
    let name = spec.name.clone();
    let consumer = provision::durable(&stream, &ctx.config, spec.name, spec.filter).await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(ctx.config.inbox_batch)
        .heartbeat(Duration::from_secs(1))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| BusError::Messages {
            consumer: name.clone(),
            source: broker(e),
        })?;
    let mut chunks = messages.ready_chunks(ctx.config.inbox_batch);
    // The batch whose journal step runs while the next one is checked. It is
    // awaited on every way out, so that two sessions never decide at once.
    let mut finishing: Option<tokio::task::JoinHandle<Result<(), BusError>>> = None;
    let ended = pipeline(ctx, cancel, backoff, &mut chunks, &mut finishing).await;
    let finished = match finishing.take() {
        Some(f) => f.await.map_err(BusError::Task).and_then(|r| r),
        None => Ok(()),
    };
    match ended {
        Ok(None) => finished,
        Ok(Some(source)) => {
            finished?;
            Err(BusError::Messages {
                consumer: name,
                source,
            })
        }
        Err(e) => Err(e),
    }
}

/// Reads batches of messages until cancelled (`Ok(None)`) or the consumer
/// fails (`Ok(Some(why))`). Pipelined: a batch's stateless checks run while
/// the previous batch journals (`finishing`); its stateful steps start only
/// after that one ended.
async fn pipeline<S>(
    ctx: &Arc<Ctx>,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
    chunks: &mut S,
    finishing: &mut Option<tokio::task::JoinHandle<Result<(), BusError>>>,
) -> Result<Option<Box<dyn std::error::Error + Send + Sync>>, BusError>
where
    S: futures::Stream<
            Item = Vec<Result<Message, async_nats::jetstream::consumer::pull::MessagesError>>,
        > + Unpin,
{
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            c = chunks.next() => c,
        };
        let Some(chunk) = chunk else {
            return Ok(Some("message stream ended".into()));
        };
        let mut msgs = Vec::with_capacity(chunk.len());
        let mut failure = None;
        for m in chunk {
            match m {
                Ok(m) => msgs.push(m),
                Err(e) => failure = Some(e),
            }
        }
        if !msgs.is_empty() {
            let prepared = prepare(ctx, msgs).await?;
            if let Some(f) = finishing.take() {
                f.await.map_err(BusError::Task)??;
            }
            *finishing = Some(tokio::spawn(finish(ctx.clone(), prepared)));
            backoff.reset();
        }
        if let Some(e) = failure {
            return Ok(Some(broker(e)));
        }
    }
}

/// One message's outcome after the journal step.
enum Done {
    /// Durable: ack. For a receipt, the event of ours it completed.
    Ack(Option<EventId>),
    /// Not durable: nak, it comes again.
    Retry,
}

/// One event to handle: a message of its own, or one event of a batch
/// ([`crate::batch`]), with the message it came in.
struct Unit {
    msg: usize,
    subject: String,
    payload: bytes::Bytes,
    headers: Option<async_nats::HeaderMap>,
    /// Set when the message is on a batch subject but not a batch: the
    /// whole message is quarantined as `malformed` for this reason.
    not_a_batch: Option<String>,
}

/// The units of `msgs`, in stream order (a batch's events in its order).
fn units(ctx: &Ctx, msgs: &[Message]) -> Vec<Unit> {
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let subject = m.subject.to_string();
        let batched = matches!(
            crate::subjects::parse(&subject),
            Some(crate::subjects::Subject::Event {
                kind: crate::subjects::SubjectKind::Batch,
                ..
            })
        );
        // An oversized message is refused as it is, batch or not.
        if !batched || m.payload.len() > ctx.config.max_message_bytes {
            out.push(Unit {
                msg: i,
                subject,
                payload: m.payload.clone(),
                headers: m.headers.clone(),
                not_a_batch: None,
            });
            continue;
        }
        match crate::batch::decode(&m.payload) {
            Ok(items) => out.extend(items.into_iter().map(|it| Unit {
                msg: i,
                subject: subject.clone(),
                payload: it.envelope,
                headers: Some(it.headers),
                not_a_batch: None,
            })),
            Err(reason) => out.push(Unit {
                msg: i,
                subject,
                payload: m.payload.clone(),
                headers: m.headers.clone(),
                not_a_batch: Some(reason),
            }),
        }
    }
    out
}

/// Most threads the stateless checks of one batch of messages run on.
const CHECK_THREADS: usize = 4;

/// Most units whose stateless checks run on the inbox's own (async) thread.
const SMALL_BATCH: usize = 2;

/// Fewest units whose signatures are split over threads: below it one
/// thread checks them (under 1 ms), cheaper than starting another thread,
/// which on a busy host only adds context switches.
const SPLIT_AT: usize = 32;

/// A batch of messages after its stateless checks.
struct Prepared {
    msgs: Vec<Message>,
    units: Vec<Unit>,
    authentic: Vec<Result<check::Authentic, Rejection>>,
    spans: Vec<tracing::Span>,
    now: Timestamp,
}

/// Unpacks a batch of messages and runs the stateless checks.
async fn prepare(ctx: &Arc<Ctx>, msgs: Vec<Message>) -> Result<Prepared, BusError> {
    let now = Timestamp::now();
    let units = units(ctx, &msgs);
    // One or two signatures take less time than a hop to the blocking pool
    // and back (the usual batch when the inbox keeps up): checked here.
    let (units, authentic, spans) = if units.len() <= SMALL_BATCH {
        let (authentic, spans) = authenticate_all(ctx, &units, now);
        (units, authentic, spans)
    } else {
        let c = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let (authentic, spans) = authenticate_all(&c, &units, now);
            (units, authentic, spans)
        })
        .await
        .map_err(BusError::Task)?
    };
    Ok(Prepared {
        msgs,
        units,
        authentic,
        spans,
        now,
    })
}

/// The stateful checks and the journal step of a prepared batch, then its
/// acks; tells the relay which of our events were receipted.
async fn finish(ctx: Arc<Ctx>, p: Prepared) -> Result<(), BusError> {
    let Prepared {
        msgs,
        units,
        authentic,
        spans,
        now,
    } = p;
    let msgs_len = msgs.len();
    let c = ctx.clone();
    let retry = tokio::task::spawn_blocking(move || {
        let verdicts = decide_all(&c, &units, authentic, &spans);
        let outcomes = journal_all(&c, &units, &verdicts, now);
        // A message is acked when every unit of it is durable; otherwise it
        // comes again whole (its durable units are deduplicated then).
        let mut retry = vec![false; msgs_len];
        let mut completed = Vec::new();
        for (u, d) in units.iter().zip(outcomes) {
            match d {
                Done::Ack(c) => completed.extend(c),
                Done::Retry => retry[u.msg] = true,
            }
        }
        // The relay first, from this thread as soon as the commit is
        // durable (an idle runtime worker starts it at once): the receipts
        // just journaled are in its outbox, and the events they complete
        // free their lanes.
        crate::meter::delivered(&c, &completed);
        if let Ok(mut done) = c.completed.lock() {
            done.extend(completed);
        }
        c.relay_wake.notify_one();
        retry
    })
    .await
    .map_err(BusError::Task)?;
    for (m, retry) in msgs.iter().zip(retry) {
        if retry {
            let _ = m
                .ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
                .await;
        } else if let Err(e) = m.ack().await {
            tracing::debug!(error = %e, "ack failed; the message will be redelivered and deduplicated");
        }
    }
    Ok(())
}

/// The stateless checks of every unit (envelope, signature, subject,
/// shape: [`check::parse`], [`check::authenticate_parsed`]); the signatures
/// in Ed25519 batch equations on up to [`CHECK_THREADS`] threads
/// ([`crate::directory::Directory::verify_batch`]; a failed batch falls
/// back to one by one, which names the bad one). With each unit's trace
/// span.
fn authenticate_all(
    ctx: &Ctx,
    units: &[Unit],
    now: Timestamp,
) -> (Vec<Result<check::Authentic, Rejection>>, Vec<tracing::Span>) {
    let spans: Vec<tracing::Span> = units
        .iter()
        .map(|u| {
            let span = tracing::info_span!("waymark.bus.receive", subject = %u.subject);
            trace::adopt(&span, u.headers.as_ref());
            span
        })
        .collect();
    let parsed: Vec<Result<check::Parsed, Rejection>> = units
        .iter()
        .zip(&spans)
        .map(|(u, span)| match &u.not_a_batch {
            Some(reason) => Err(Rejection::new(Reason::Malformed, reason.clone())),
            None => span.in_scope(|| check::parse(ctx, &u.subject, &u.payload)),
        })
        .collect();
    // The signatures, in one batch equation per sender and thread.
    let verify = |range: std::ops::Range<usize>| {
        let items: Vec<(usize, (&waymark_proto::v1::Envelope, Timestamp))> = range
            .filter_map(|i| parsed[i].as_ref().ok().map(|p| (i, (&p.env, p.at))))
            .collect();
        let envs: Vec<_> = items.iter().map(|(_, x)| *x).collect();
        let ok = ctx
            .directory
            .verify_batch(&envs, waymark_proto::PAYLOAD_TYPE_EVENT);
        items
            .into_iter()
            .zip(ok)
            .filter(|(_, ok)| *ok)
            .map(|((i, _), _)| i)
            .collect::<Vec<usize>>()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(CHECK_THREADS);
    let mut verified = vec![false; units.len()];
    let good: Vec<usize> = if threads < 2 || units.len() < SPLIT_AT {
        verify(0..units.len())
    } else {
        // The first part on this thread, the others on threads of their own.
        let per = units.len().div_ceil(threads);
        std::thread::scope(|s| {
            let others: Vec<_> = (per..units.len())
                .step_by(per)
                .map(|start| {
                    let verify = &verify;
                    s.spawn(move || verify(start..(start + per).min(units.len())))
                })
                .collect();
            let mut good = verify(0..per);
            for p in others {
                good.extend(p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            good
        })
    };
    for i in good {
        verified[i] = true;
    }
    let authentic = parsed
        .into_iter()
        .zip(verified)
        .zip(&spans)
        .map(|((p, ok), span)| {
            p.and_then(|p| span.in_scope(|| check::authenticate_parsed(ctx, p, ok, now)))
        })
        .collect();
    (authentic, spans)
}

/// The stateful checks ([`check::decide`]: receipts, dedup, sealed data,
/// the rules), one unit after the other in stream order, as the case
/// states require.
fn decide_all(
    ctx: &Ctx,
    units: &[Unit],
    authentic: Vec<Result<check::Authentic, Rejection>>,
    spans: &[tracing::Span],
) -> Vec<Checked> {
    authentic
        .into_iter()
        .zip(units.iter().zip(spans))
        .map(|(a, (u, span))| match a {
            Ok(a) => span.in_scope(|| check::decide(ctx, a, u.headers.as_ref())),
            Err(refused) => Ok(Err(refused)),
        })
        .collect()
}

/// Journals every unit, in stream order, in one commit: each unit's entry
/// (RECEIVED, or QUARANTINED) and its receipt are staged, and one wait for
/// the last staged append makes them all durable (commits are durable in
/// order). A unit that fails to stage is retried, and so is every later
/// unit of its case (a case's events are journaled in order or not at all);
/// its case is dropped from the policy cache. If the commit fails, every
/// unit is retried.
fn journal_all(ctx: &Ctx, units: &[Unit], verdicts: &[Checked], now: Timestamp) -> Vec<Done> {
    let mut out: Vec<Done> = Vec::with_capacity(units.len());
    let mut failed_cases: HashSet<CaseId> = HashSet::new();
    let mut last = None;
    let mut duplicates = 0u64;
    let case_of = |v: &Checked| match v {
        Ok(Ok(a)) => a.case,
        _ => None,
    };
    for (u, v) in units.iter().zip(verdicts) {
        let case = case_of(v);
        if case.is_some_and(|c| failed_cases.contains(&c)) {
            out.push(Done::Retry);
            continue;
        }
        match stage_one(ctx, &u.subject, &u.payload, v, now) {
            Ok(one) => {
                last = one.staged.or(last);
                duplicates += u64::from(one.duplicate);
                out.push(Done::Ack(one.completes));
            }
            Err(e) => {
                tracing::warn!(error = %e, "journaling an inbox message failed; will retry");
                if let Some(c) = case {
                    ctx.cache.invalidate(&c);
                    failed_cases.insert(c);
                }
                out.push(Done::Retry);
            }
        }
    }
    if let Some(staged) = last
        && let Err(e) = ctx.journal.wait_staged(staged)
    {
        tracing::warn!(error = %e, "committing inbox messages failed; will retry");
        for v in verdicts {
            if let Some(c) = case_of(v) {
                ctx.cache.invalidate(&c);
            }
        }
        return units.iter().map(|_| Done::Retry).collect();
    }
    for _ in 0..duplicates {
        ctx.counters.duplicate();
    }
    out
}

/// What staging one unit did.
struct StagedUnit {
    /// The last append it staged, if any (a unit may stage none, e.g. a
    /// duplicate whose receipt exists).
    staged: Option<waymark_journal::Staged>,
    /// It was journaled before.
    duplicate: bool,
    /// For a receipt: the event of ours it completes.
    completes: Option<EventId>,
}

fn stage_one(
    ctx: &Ctx,
    subject: &str,
    payload: &[u8],
    verdict: &Checked,
    now: Timestamp,
) -> Result<StagedUnit, JournalError> {
    match verdict {
        Err(e) => Err(JournalError::Failed(format!("check failed: {e}"))),
        Ok(Ok(a)) => {
            if !a.opened.0.is_empty() {
                // Kept before the event is journaled: a failure leaves the
                // message unacknowledged, so it comes again.
                let sealing = ctx.sealing().ok_or_else(|| {
                    JournalError::Failed("sealed data opened but no sealing installed".into())
                })?;
                sealing
                    .keep(&a.event, &a.opened)
                    .map_err(|e| JournalError::Failed(format!("keeping sealed data: {e}")))?;
            }
            // The event and its receipt go into one commit: the receipt
            // (which names the event's seq) is staged before the event is
            // known durable, and is durable only with it; nothing leaves
            // before both are.
            let staged = ctx.journal.stage_received(payload, now, a.completes)?;
            let appended = staged.appended();
            let receipt = receipt::ensure(
                ctx,
                &a.event,
                payload,
                appended.seq(),
                ReceiptStatus::Journaled,
                "",
            )?;
            Ok(StagedUnit {
                staged: Some(receipt.unwrap_or(staged)),
                duplicate: matches!(appended, Appended::Existing { .. }) || a.duplicate,
                completes: a.completes,
            })
        }
        Ok(Err(rej)) => {
            let q = quarantine::record(rej, subject, payload);
            let appended = ctx.journal.append_quarantined(q, now)?;
            ctx.counters.quarantined(rej.reason);
            tracing::info!(reason = rej.reason.as_str(), detail = %rej.detail, "quarantined");
            let mut staged = None;
            if rej.authentic.is_some()
                && let Some(ev) = crate::state::decode_event(payload)
            {
                staged = receipt::ensure(
                    ctx,
                    &ev,
                    payload,
                    appended.seq(),
                    ReceiptStatus::Quarantined,
                    rej.reason.as_str(),
                )?;
            }
            Ok(StagedUnit {
                staged,
                duplicate: false,
                completes: None,
            })
        }
    }
}
