//! The outbox relay.
//!
//! Reads the journal's outbox in seq order into a bounded window and
//! publishes each item's envelope bytes verbatim on
//! `waymark.v1.evt.<me>.<recipient>.<kind>` with `Nats-Msg-Id = <event id>`
//! (one recipient per event in this protocol, so the event id is unique per
//! delivery) and the trace headers `send` captured.
//!
//! Item states: WAITING → (publish, PubAck) → SENT → (receipt journaled by
//! the inbox) → gone; SENT → (receipt timeout, still in the outbox) →
//! re-sent. A failed publish leaves the item WAITING and backs off
//! exponentially; a missing stream is re-provisioned. A JetStream ack alone
//! never removes an event: only the receipt does (in the journal, atomically
//! with journaling the receipt).
//!
//! Order: per (case, recipient) lane one event is SENT at a time; the next
//! waits for its predecessor's receipt. The receiver therefore journals each
//! case's events in the order they were sent, whatever the broker loses.
//!
//! Receipts (body `receipt`) are not receipted: their outbox item is removed
//! after the PubAck, through the journal's group commit
//! ([`Journal::complete_outbox_items`](waymark_journal::Journal::complete_outbox_items)),
//! in the background so that the relay is not held up by the fsync; one not
//! removed before a stop is published again at the next start (deduplicated
//! by event id).
//!
//! Publishing: at most `publish_batch` messages are in flight per chunk, far
//! below the JetStream context's ack-permit pool (async-nats waits for a
//! free permit, and only our own unawaited acks would release it), and a
//! chunk's PubAcks are awaited concurrently under one `publish_ack_timeout`
//! deadline, so a broker that dies with messages in flight costs one
//! timeout, not one per lost ack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use waymark_journal::JournalStore;
use waymark_proto::v1::{JournalEntry, event::Body as B};
use waymark_types::{AgencyId, CaseId, EventId};

use crate::Ctx;
use crate::config::Backoff;
use crate::subjects::{self, SubjectKind};

struct Item {
    recipient: AgencyId,
    event_id: EventId,
    lane: Option<(CaseId, AgencyId)>,
    subject: String,
    envelope: Bytes,
    /// Detached ciphertexts of its sealed sections ([`crate::sealing`]).
    sealed: Vec<Vec<u8>>,
    receipt: bool,
    sent: Option<Instant>,
}

struct Relay {
    ctx: Arc<Ctx>,
    items: BTreeMap<u64, Item>,
    by_event: HashMap<EventId, u64>,
    busy: HashSet<(CaseId, AgencyId)>,
    cursor: u64,
}

pub(crate) async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut r = Relay {
        ctx: ctx.clone(),
        items: BTreeMap::new(),
        by_event: HashMap::new(),
        busy: HashSet::new(),
        cursor: 0,
    };
    let mut backoff = Backoff::new(ctx.config.backoff);
    loop {
        let wait = match r.round().await {
            Ok(next) => {
                backoff.reset();
                next
            }
            Err(e) => {
                tracing::warn!(error = %e, "relay round failed; backing off");
                backoff.fail()
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = ctx.relay_wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A recipient's runs of items (each one broker message) and the bytes of
/// its last run.
type Runs<'a> = (AgencyId, Vec<Vec<(u64, &'a Item)>>, usize);

type RoundError = Box<dyn std::error::Error + Send + Sync>;

impl Relay {
    /// One pass; returns how long to sleep unless woken.
    async fn round(&mut self) -> Result<Duration, RoundError> {
        self.drain_completed();
        self.load().await?;
        let now = Instant::now();
        let timeout = self.ctx.config.receipt_timeout;
        // Timed-out items: still undelivered? (The inbox normally tells us.)
        let expired: Vec<(u64, AgencyId)> = self
            .items
            .iter()
            .filter(|(_, i)| !i.receipt && i.sent.is_some_and(|t| now >= t + timeout))
            .map(|(s, i)| (*s, i.recipient.clone()))
            .collect();
        if !expired.is_empty() {
            let ctx = self.ctx.clone();
            let gone: Vec<u64> = tokio::task::spawn_blocking(move || {
                expired
                    .into_iter()
                    .filter(|(s, r)| !ctx.journal.store().outbox_contains(*s, r).unwrap_or(true))
                    .map(|(s, _)| s)
                    .collect()
            })
            .await?;
            for s in gone {
                self.remove(s);
            }
        }
        // Choose what to publish: in seq order, the first item of each lane.
        let mut lanes_seen = HashSet::new();
        let mut batch = Vec::new();
        for (seq, i) in &self.items {
            let due = match (i.receipt, i.sent) {
                (true, None) => true,
                (true, Some(_)) => false,
                (false, sent) => {
                    if let Some(l) = &i.lane
                        && !lanes_seen.insert(l)
                    {
                        continue;
                    }
                    sent.is_none_or(|t| now >= t + timeout)
                }
            };
            if due {
                batch.push(*seq);
            }
        }
        for seq in self.take_republish() {
            if !batch.contains(&seq) {
                batch.push(seq);
            }
        }
        self.publish(batch).await?;
        let pending = self
            .items
            .values()
            .filter(|i| !i.receipt && i.sent.is_some())
            .count();
        crate::meter::relay_state(self.items.len(), pending);
        let next = self
            .items
            .values()
            .filter_map(|i| i.sent.filter(|_| !i.receipt).map(|t| t + timeout))
            .min()
            .map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(Instant::now())
            });
        Ok(next.max(Duration::from_millis(5)))
    }

    fn drain_completed(&mut self) {
        let done: Vec<EventId> = self
            .ctx
            .completed
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for id in done {
            if let Some(seq) = self.by_event.get(&id).copied() {
                self.remove(seq);
            }
        }
    }

    fn take_republish(&mut self) -> Vec<u64> {
        self.ctx
            .republish
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn remove(&mut self, seq: u64) {
        if let Some(i) = self.items.remove(&seq) {
            self.by_event.remove(&i.event_id);
            if let Some(l) = i.lane {
                self.busy.remove(&l);
            }
        }
    }

    /// Loads new outbox items after the cursor, up to the window. The first
    /// [`SMALL_LOAD`] items are read on this thread (point reads of recent,
    /// cached entries: cheaper than a hop to the blocking pool, which is
    /// most of a round's cost when one event arrived); a fuller outbox (a
    /// backlog after a start or an outage) is read on a blocking thread.
    async fn load(&mut self) -> Result<(), RoundError> {
        let room = self
            .ctx
            .config
            .relay_window
            .saturating_sub(self.items.len());
        if room == 0 {
            return Ok(());
        }
        let first = room.min(SMALL_LOAD);
        let loaded = load_items(&self.ctx, self.cursor, first)?;
        // "More" is judged by the outbox rows read, not the items admitted:
        // a skipped row (see `read_item`) must not leave a backlog unread.
        let more = loaded.rows == first && room > first;
        self.admit(loaded);
        if more {
            let (ctx, after) = (self.ctx.clone(), self.cursor);
            let loaded = tokio::task::spawn_blocking(move || load_items(&ctx, after, room - first))
                .await??;
            self.admit(loaded);
        }
        Ok(())
    }

    /// Takes loaded items into the window; the cursor moves past every row
    /// read, skipped ones included, so a skipped row is read (and logged)
    /// once per process, not once per round.
    fn admit(&mut self, loaded: Loaded) {
        self.cursor = self.cursor.max(loaded.last);
        for (seq, item) in loaded.items {
            self.by_event.insert(item.event_id, seq);
            self.items.insert(seq, item);
        }
    }

    /// Publishes the given seqs in chunks of at most `publish_batch` and
    /// records the outcomes; stops at the first failed chunk (its unacked
    /// items stay WAITING and go again next round).
    async fn publish(&mut self, seqs: Vec<u64>) -> Result<(), RoundError> {
        for chunk in seqs.chunks(self.ctx.config.publish_batch.max(1)) {
            if let Some(kind) = self.publish_chunk(chunk).await? {
                if kind == PublishErrorKind::StreamNotFound {
                    crate::provision::provision(&self.ctx.js, &self.ctx.config).await?;
                }
                return Err(format!("publish failed: {kind}").into());
            }
        }
        Ok(())
    }

    /// Publishes one chunk (pipelined) and awaits its PubAcks *together*,
    /// under one deadline (`publish_ack_timeout`). async-nats starts a PubAck
    /// future's timeout only when it is first polled: awaited one after the
    /// other, every ack lost with a killed broker cost a full timeout in
    /// turn, and the relay stalled for (lost acks × 5 s). Returns the first
    /// publish or PubAck error.
    ///
    /// The chunk's items for one recipient travel as batches
    /// ([`crate::batch`]) of up to `batch_max_events`; a lone item (or one
    /// too big to share a message) travels as a message of its own.
    async fn publish_chunk(
        &mut self,
        seqs: &[u64],
    ) -> Result<Option<PublishErrorKind>, RoundError> {
        // Receipts no longer in the window (published once already) are
        // read again from the journal.
        let mut reread = HashMap::new();
        for &seq in seqs {
            if !self.items.contains_key(&seq)
                && let Some(i) = self.reread(seq).await?
            {
                reread.insert(seq, i);
            }
        }
        let messages = self.pack(seqs, &reread);
        let mut pending: Vec<(Vec<u64>, PublishAckFuture)> = Vec::with_capacity(messages.len());
        let mut first_error = None;
        for (group, subject, msg) in messages {
            match self.ctx.js.send_publish(subject, msg).await {
                Ok(f) => pending.push((group, f)),
                Err(e) => {
                    first_error = Some(e.kind());
                    break;
                }
            }
        }
        let deadline = Instant::now() + self.ctx.config.publish_ack_timeout;
        let acks = futures::future::join_all(pending.into_iter().map(|(group, f)| async move {
            match tokio::time::timeout_at(deadline, f.into_future()).await {
                Ok(Ok(_)) => (group, None),
                Ok(Err(e)) => (group, Some(e.kind())),
                Err(_) => (group, Some(PublishErrorKind::TimedOut)),
            }
        }))
        .await;
        let mut delivered_receipts = Vec::new();
        for (group, error) in acks {
            if let Some(kind) = error {
                first_error = first_error.or(Some(kind));
                continue;
            }
            for seq in group {
                if let Some(i) = self.items.get_mut(&seq) {
                    if i.receipt {
                        delivered_receipts.push((seq, i.recipient.clone()));
                    } else {
                        i.sent = Some(Instant::now());
                        if let Some(l) = &i.lane {
                            self.busy.insert(l.clone());
                        }
                    }
                }
            }
        }
        if !delivered_receipts.is_empty() {
            // Not awaited: the removal is bookkeeping, and the relay goes on
            // publishing while it commits. The items leave the window now
            // (the cursor is past them); if the process stops before the
            // removal is durable, the receipts are published once more at
            // the next start, which the broker's and the sender's dedup by
            // event id absorb.
            for (seq, _) in &delivered_receipts {
                self.remove(*seq);
            }
            let ctx = self.ctx.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = ctx.journal.complete_outbox_items(&delivered_receipts) {
                    tracing::warn!(error = %e, "removing published receipts from the outbox failed; they will be published again");
                }
            });
        }
        Ok(first_error)
    }

    /// The broker messages for `seqs` (in seq order): per recipient, runs of
    /// up to `batch_max_events` items under half of `max_message_bytes`
    /// become one batch; a run of one is a message of its own. Each message
    /// comes with the seqs it carries.
    fn pack(
        &self,
        seqs: &[u64],
        reread: &HashMap<u64, Item>,
    ) -> Vec<(Vec<u64>, String, PublishMessage)> {
        let max_events = self
            .ctx
            .config
            .batch_max_events
            .clamp(1, crate::batch::MAX_EVENTS);
        let max_bytes = self.ctx.config.max_message_bytes / 2;
        // Per recipient, in order of first appearance; runs in seq order.
        let mut runs: Vec<Runs<'_>> = Vec::new();
        for &seq in seqs {
            let Some(item) = self.items.get(&seq).or_else(|| reread.get(&seq)) else {
                continue;
            };
            let size = item.envelope.len()
                + item
                    .sealed
                    .iter()
                    .map(|c| c.len() * 4 / 3 + 32)
                    .sum::<usize>()
                + 160;
            let at = match runs.iter().position(|(r, _, _)| *r == item.recipient) {
                Some(at) => at,
                None => {
                    runs.push((item.recipient.clone(), vec![Vec::new()], 0));
                    runs.len() - 1
                }
            };
            let (_, list, bytes) = &mut runs[at];
            let full = list.last().is_some_and(|run| {
                !run.is_empty() && (run.len() >= max_events || *bytes + size > max_bytes)
            });
            if full {
                list.push(Vec::new());
                *bytes = 0;
            }
            if let Some(run) = list.last_mut() {
                run.push((seq, item));
            }
            *bytes += size;
        }
        let mut out = Vec::new();
        for (recipient, list, _) in runs {
            for run in list {
                match run.as_slice() {
                    [] => {}
                    [(seq, i)] => out.push((vec![*seq], i.subject.clone(), self.message(i))),
                    _ => {
                        let headers: Vec<HeaderMap> =
                            run.iter().map(|(_, i)| self.headers(i)).collect();
                        let payload = crate::batch::encode(
                            run.iter().zip(&headers).map(|((_, i), h)| (&i.envelope, h)),
                        );
                        let msg = PublishMessage::build()
                            .payload(Bytes::from(payload))
                            .message_id(crate::batch::message_id(
                                run.iter().map(|(_, i)| &i.event_id),
                            ));
                        let subject = subjects::event(
                            &self.ctx.config.agency,
                            &recipient,
                            SubjectKind::Batch,
                        );
                        out.push((run.iter().map(|(s, _)| *s).collect(), subject, msg));
                    }
                }
            }
        }
        out
    }

    /// The headers `i` carries: its trace context and sealed sections.
    fn headers(&self, i: &Item) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(s) = self.ctx.in_flight.lock()
            && let Some(t) = s.get(&i.event_id)
        {
            crate::trace::inject(&t.trace, &mut headers);
        }
        crate::sealing::attach(&mut headers, &i.sealed);
        headers
    }

    fn message(&self, i: &Item) -> PublishMessage {
        PublishMessage::build()
            .payload(i.envelope.clone())
            .headers(self.headers(i))
            .message_id(i.event_id.to_string())
    }

    /// A receipt no longer in the outbox, to publish again.
    async fn reread(&self, seq: u64) -> Result<Option<Item>, RoundError> {
        let ctx = self.ctx.clone();
        let me = ctx.config.agency.clone();
        let item = tokio::task::spawn_blocking(move || -> Result<Option<Item>, RoundError> {
            let Some(bytes) = ctx.journal.entry(seq)? else {
                return Ok(None);
            };
            let Some(ev) = JournalEntry::decode(bytes.as_slice())
                .ok()
                .and_then(|e| crate::state::decode_event(&e.envelope))
            else {
                return Ok(None);
            };
            let (Ok(to), Ok(id)) = (
                AgencyId::new(&ev.recipient_id),
                EventId::parse(&ev.event_id),
            ) else {
                return Ok(None);
            };
            let _ = me;
            read_item(&ctx, seq, to, id)
        })
        .await??;
        Ok(item)
    }
}

/// Outbox items a relay round reads on its own thread ([`Relay::load`]).
const SMALL_LOAD: usize = 32;

/// What one [`load_items`] read: how many outbox rows, the last row's seq
/// (0 if none), and the items made of them (fewer than `rows` when a row
/// was skipped).
struct Loaded {
    rows: usize,
    last: u64,
    items: Vec<(u64, Item)>,
}

/// The outbox items after seq `after`, at most `limit` rows, with their
/// journaled envelopes.
fn load_items(ctx: &Ctx, after: u64, limit: usize) -> Result<Loaded, RoundError> {
    let rows = ctx.journal.outbox(after, limit)?;
    let mut loaded = Loaded {
        rows: rows.len(),
        last: rows.last().map_or(0, |o| o.seq),
        items: Vec::with_capacity(rows.len()),
    };
    for o in rows {
        if let Some(item) = read_item(ctx, o.seq, o.recipient, o.event_id)? {
            loaded.items.push((o.seq, item));
        }
    }
    Ok(loaded)
}

/// Reads an outbox item's journaled envelope.
fn read_item(
    ctx: &Ctx,
    seq: u64,
    recipient: AgencyId,
    event_id: EventId,
) -> Result<Option<Item>, RoundError> {
    let Some(bytes) = ctx.journal.entry(seq)? else {
        return Ok(None);
    };
    let entry = JournalEntry::decode(bytes.as_slice())?;
    let Some(ev) = crate::state::decode_event(&entry.envelope) else {
        tracing::error!(seq, "outbox item's journal entry holds no event; skipped");
        return Ok(None);
    };
    let Some(kind) = SubjectKind::of_event(&ev) else {
        return Ok(None);
    };
    let receipt = matches!(ev.body, Some(B::Receipt(_)));
    let lane = CaseId::parse(&ev.case_id)
        .ok()
        .filter(|_| !receipt)
        .map(|c| (c, recipient.clone()));
    let sealed = if ev.sealed.is_empty() {
        Vec::new()
    } else {
        // Without them the recipient quarantines the event (sealed_data) and
        // says so in its receipt: the sender's evidence stays complete.
        match ctx.sealing().map(|s| s.ciphertexts(&ev)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(event = %event_id, error = %e, "sealed data unavailable; publishing without it");
                Vec::new()
            }
            None => {
                tracing::warn!(event = %event_id, "no sealing installed; publishing without sealed data");
                Vec::new()
            }
        }
    };
    Ok(Some(Item {
        subject: subjects::event(&ctx.config.agency, &recipient, kind),
        recipient,
        event_id,
        lane,
        envelope: Bytes::from(entry.envelope),
        sealed,
        receipt,
        sent: None,
    }))
}
