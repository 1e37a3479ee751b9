//! The inbox: one durable pull consumer per agency on
//! `waymark.v1.evt.*.<me>.*`, explicit acks, bounded `max_ack_pending`.
//!
//! Messages are handled in ready batches, in stream order:
//! 1. checks ([`crate::check::incoming`]), sequentially, so the case states
//!    see events in order;
//! 2. journal appends, one group per case (a case's events in order, the
//!    groups in parallel so the journal group-commits them into few fsyncs):
//!    RECEIVED (dedup by event id) and then the receipt, or QUARANTINED (and a
//!    QUARANTINED receipt when the sender is authentic);
//! 3. acks, only for messages whose appends are durable. A message whose
//!    append failed is nak'ed (and the rest of its case group with it) and
//!    comes again; its case is dropped from the cache.
//!
//! Any consumer error (broker restart, stream deleted) ends the session; the
//! next one re-provisions the stream and consumer after a backoff.

use std::collections::HashMap;
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
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            c = chunks.next() => c,
        };
        let Some(chunk) = chunk else {
            return Err(BusError::Messages {
                consumer: name,
                source: "message stream ended".into(),
            });
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
            handle(ctx, msgs).await?;
            backoff.reset();
        }
        if let Some(e) = failure {
            return Err(BusError::Messages {
                consumer: name,
                source: broker(e),
            });
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

async fn handle(ctx: &Arc<Ctx>, msgs: Vec<Message>) -> Result<(), BusError> {
    let now = Timestamp::now();
    let input: Vec<(String, bytes::Bytes, Option<async_nats::HeaderMap>)> = msgs
        .iter()
        .map(|m| (m.subject.to_string(), m.payload.clone(), m.headers.clone()))
        .collect();
    let input = Arc::new(input);
    let (c, inp) = (ctx.clone(), input.clone());
    let verdicts: Vec<Checked> = tokio::task::spawn_blocking(move || {
        inp.iter()
            .map(|(subject, payload, headers)| {
                let span = tracing::info_span!("waymark.bus.receive", subject = %subject);
                trace::adopt(&span, headers.as_ref());
                let _entered = span.enter();
                check::incoming(&c, subject, payload, headers.as_ref(), now)
            })
            .collect()
    })
    .await
    .map_err(BusError::Task)?;

    // Group by case, keeping stream order inside each group.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_case: HashMap<CaseId, usize> = HashMap::new();
    for (i, v) in verdicts.iter().enumerate() {
        match v {
            Ok(Ok(a)) if a.case.is_some() => {
                let case = a.case.unwrap_or_default();
                let g = *by_case.entry(case).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            _ => groups.push(vec![i]),
        }
    }
    let verdicts = Arc::new(verdicts);
    let mut jobs = Vec::with_capacity(groups.len());
    for g in groups {
        let (c, inp, ver) = (ctx.clone(), input.clone(), verdicts.clone());
        jobs.push(tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(g.len());
            let mut failed = false;
            for i in g {
                if failed {
                    out.push((i, Done::Retry));
                    continue;
                }
                let (subject, payload, _) = &inp[i];
                match journal_one(&c, subject, payload, &ver[i], now) {
                    Ok(done) => out.push((i, done)),
                    Err(e) => {
                        tracing::warn!(error = %e, "journaling an inbox message failed; will retry");
                        if let Ok(Ok(a)) = &ver[i]
                            && let Some(case) = &a.case
                        {
                            c.cache.invalidate(case);
                        }
                        failed = true;
                        out.push((i, Done::Retry));
                    }
                }
            }
            out
        }));
    }
    let mut outcomes: Vec<Option<Done>> = (0..msgs.len()).map(|_| None).collect();
    for j in futures::future::join_all(jobs).await {
        for (i, d) in j.map_err(BusError::Task)? {
            outcomes[i] = Some(d);
        }
    }
    let mut completed = Vec::new();
    for (m, d) in msgs.iter().zip(outcomes) {
        match d {
            Some(Done::Ack(c)) => {
                completed.extend(c);
                if let Err(e) = m.ack().await {
                    tracing::debug!(error = %e, "ack failed; the message will be redelivered and deduplicated");
                }
            }
            _ => {
                let _ = m
                    .ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
                    .await;
            }
        }
    }
    crate::meter::delivered(ctx, &completed);
    if let Ok(mut c) = ctx.completed.lock() {
        c.extend(completed);
    }
    ctx.relay_wake.notify_one();
    Ok(())
}

fn journal_one(
    ctx: &Ctx,
    subject: &str,
    payload: &[u8],
    verdict: &Checked,
    now: Timestamp,
) -> Result<Done, JournalError> {
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
            // (which names the event's seq) is appended before the event is
            // known durable, and is durable only with it; nothing leaves
            // before both are.
            let staged = ctx.journal.stage_received(payload, now, a.completes)?;
            let appended = staged.appended();
            receipt::ensure(
                ctx,
                &a.event,
                payload,
                appended.seq(),
                ReceiptStatus::Journaled,
                "",
            )?;
            ctx.journal.wait_staged(staged)?;
            if matches!(appended, Appended::Existing { .. }) || a.duplicate {
                ctx.counters.duplicate();
            }
            Ok(Done::Ack(a.completes))
        }
        Ok(Err(rej)) => {
            let q = quarantine::record(rej, subject, payload);
            let appended = ctx.journal.append_quarantined(q, now)?;
            ctx.counters.quarantined(rej.reason);
            tracing::info!(reason = rej.reason.as_str(), detail = %rej.detail, "quarantined");
            if rej.authentic.is_some()
                && let Some(ev) = crate::state::decode_event(payload)
            {
                receipt::ensure(
                    ctx,
                    &ev,
                    payload,
                    appended.seq(),
                    ReceiptStatus::Quarantined,
                    rej.reason.as_str(),
                )?;
            }
            Ok(Done::Ack(None))
        }
    }
}
