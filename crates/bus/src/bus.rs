//! The handle: start the tasks, send events, shut down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use waymark_crypto::{AgencyKey, sign_envelope};
use waymark_journal::{Appended, Journal, JournalError, Progress, SledStore, Staged};
use waymark_policy::{RuleSets, WireEvent, event_from_proto};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::Event as PbEvent;
use waymark_types::{CaseId, EventId, Timestamp};

use crate::config::BusConfig;
use crate::directory::Directory;
use crate::error::SendError;
use crate::quarantine::Counters;
use crate::state::CaseCache;
use crate::{inbox, meter, relay, witness};

/// Shared by the tasks of one agency's bus.
pub(crate) struct Ctx {
    pub(crate) config: BusConfig,
    pub(crate) journal: Arc<Journal<SledStore>>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) key: AgencyKey,
    pub(crate) rules: Arc<RuleSets>,
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) cache: CaseCache,
    pub(crate) counters: Arc<Counters>,
    /// Poked when the outbox grows or items complete.
    pub(crate) relay_wake: Notify,
    /// Woken (`notify_waiters`) at every journal commit step
    /// ([`Journal::on_progress`]): sends waiting for their append.
    pub(crate) commits: Notify,
    /// Events whose receipts the inbox journaled (their outbox items are gone).
    pub(crate) completed: Mutex<Vec<EventId>>,
    /// Journal seqs of receipts to publish again (a duplicate delivery).
    pub(crate) republish: Mutex<Vec<u64>>,
    /// Events `send` journaled in this process and not yet receipted: their
    /// trace headers (for the relay) and when they were journaled (for the
    /// delivery latency). Bounded by [`crate::meter::MAX_IN_FLIGHT`].
    pub(crate) in_flight: Mutex<HashMap<EventId, crate::meter::InFlight>>,
    /// The agency's handling of sealed personal data (set once, at start).
    pub(crate) sealing: std::sync::OnceLock<Arc<dyn crate::Sealing>>,
}

impl Ctx {
    pub(crate) fn sealing(&self) -> Option<&dyn crate::Sealing> {
        self.sealing.get().map(|s| &**s as &dyn crate::Sealing)
    }
}

/// What [`Bus::send`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The event.
    pub event_id: EventId,
    /// Its journal seq (durable).
    pub seq: u64,
    /// False when the event id was already journaled (an idempotent retry).
    pub new: bool,
    /// For a new entry: its entry hash (the Merkle leaf hash of its bytes).
    pub entry_hash: Option<waymark_journal::merkle::Hash>,
}

/// One agency's running bus: relay, inbox and witness tasks.
pub struct Bus {
    ctx: Arc<Ctx>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("agency", &self.ctx.config.agency)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Starts the relay, inbox and witness tasks of `config.agency` on the
    /// broker behind `js`. Streams and consumers are provisioned by the tasks
    /// (and again whenever they disappear). The tasks stop when `shutdown` is
    /// cancelled; [`Bus::shutdown`] also waits for them.
    pub fn start(
        config: BusConfig,
        js: async_nats::jetstream::Context,
        journal: Arc<Journal<SledStore>>,
        directory: Arc<Directory>,
        key: AgencyKey,
        rules: Arc<RuleSets>,
        shutdown: CancellationToken,
    ) -> Self {
        let ctx = Arc::new(Ctx {
            cache: CaseCache::new(config.agency.clone(), config.case_cache),
            config,
            journal,
            directory,
            key,
            rules,
            js,
            counters: Arc::new(Counters::default()),
            relay_wake: Notify::new(),
            commits: Notify::new(),
            completed: Mutex::new(Vec::new()),
            republish: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            sealing: std::sync::OnceLock::new(),
        });
        ctx.journal.on_progress({
            // Weak: the journal outlives neither the bus nor its context.
            let ctx = Arc::downgrade(&ctx);
            move || {
                if let Some(c) = ctx.upgrade() {
                    c.commits.notify_waiters();
                }
            }
        });
        let me = ctx.config.agency.to_string();
        let spawn = |name: &'static str, fut: futures::future::BoxFuture<'static, ()>| {
            let span = tracing::info_span!("waymark.bus.task", task = name, agency = %me);
            tokio::spawn(fut.instrument(span))
        };
        let tasks = vec![
            spawn("relay", Box::pin(relay::run(ctx.clone(), shutdown.clone()))),
            spawn("inbox", Box::pin(inbox::run(ctx.clone(), shutdown.clone()))),
            spawn(
                "witness",
                Box::pin(witness::run(ctx.clone(), shutdown.clone())),
            ),
            spawn("meter", Box::pin(meter::run(ctx.clone(), shutdown.clone()))),
        ];
        Self {
            ctx,
            cancel: shutdown,
            tasks,
        }
    }

    /// Records an event this agency originates and queues it for delivery:
    /// checks the sender, the field shape and the rules in this agency's view
    /// *before* anything is journaled or published, signs the bytes, appends
    /// them (with the outbox item, atomically) and wakes the relay. Returns
    /// once the journal append is durable. Idempotent by event id.
    ///
    /// # Errors
    /// Nothing is journaled or published when it fails:
    /// - [`SendError::NotOurs`]: `sender_id` or `sender_kind` is not this
    ///   agency's;
    /// - [`SendError::Malformed`]: the fields are malformed (all listed);
    /// - [`SendError::Refused`]: the rules, in this agency's view of the
    ///   case, refuse the event (for a forward: or its inner envelope does
    ///   not verify);
    /// - [`SendError::Journal`]: reading the journal or the durable append
    ///   failed;
    /// - [`SendError::Task`]: the blocking journal task panicked.
    pub async fn send(&self, event: PbEvent) -> Result<Sent, SendError> {
        self.send_inner(event, None).await
    }

    /// [`Bus::send`] for a client's request: the journal commits the request
    /// record `(request_key, value)` with the event, atomically
    /// ([`Journal::append_originated_for_request`](waymark_journal::Journal::append_originated_for_request)).
    /// If a record under `request_key` already exists, nothing is journaled
    /// or published and the result is `new: false` with the seq of the
    /// entry that record names; read it with
    /// [`Journal::request_record`](waymark_journal::Journal::request_record).
    ///
    /// # Errors
    /// As [`Bus::send`].
    pub async fn send_for_request(
        &self,
        event: PbEvent,
        request_key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<Sent, SendError> {
        self.send_inner(event, Some((request_key, value))).await
    }

    async fn send_inner(
        &self,
        event: PbEvent,
        request: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Sent, SendError> {
        let span = tracing::info_span!("waymark.bus.send", event_id = %event.event_id);
        let ctx = self.ctx.clone();
        async move {
            let me = &ctx.config.agency;
            let my_kind = waymark_policy::wire::vocab::agency_kind_to_proto(ctx.config.kind) as i32;
            if event.sender_id != me.as_str() || event.sender_kind != my_kind {
                return Err(SendError::NotOurs(format!(
                    "sender {:.48} kind {}",
                    event.sender_id, event.sender_kind
                )));
            }
            let wire = event_from_proto(&event).map_err(SendError::Malformed)?;
            let event_id = wire.id();
            let to = Sending {
                event_id,
                case: waymark_types::CaseId::parse(&event.case_id).ok(),
                stash: crate::trace::current(),
                has_recipient: !event.recipient_id.is_empty(),
                request,
            };
            let appended = match stage_here(&ctx, &wire, &event, &to)? {
                Some(Staging::Done(a)) => a,
                Some(Staging::Staged(staged)) => {
                    let answer = ctx.journal.progress(&staged);
                    if matches!(answer, Ok(Progress::Wait)) {
                        // Waiting, in a task of its own: a caller that goes
                        // away (a cancelled RPC) must not leave its staged
                        // append waiting for a leader.
                        tokio::spawn(durable(ctx.clone(), staged, to, answer))
                            .await
                            .map_err(SendError::Task)??
                    } else {
                        // Durable, failed, or alone with no commit running:
                        // it leads at once, on a blocking task, which runs
                        // to its end even if this caller goes away.
                        durable(ctx.clone(), staged, to, answer).await?
                    }
                }
                None => {
                    let c = ctx.clone();
                    tokio::task::spawn_blocking(move || {
                        let staged = match stage_blocking(&c, &wire, &event, &to)? {
                            Staging::Done(a) => return Ok(a),
                            Staging::Staged(staged) => staged,
                        };
                        let appended = c.journal.wait_staged(staged);
                        to.finish(&c, appended)
                    })
                    .await
                    .map_err(SendError::Task)??
                }
            };
            let (new, entry_hash) = match appended {
                waymark_journal::Appended::New { hash, .. } => (true, Some(hash)),
                waymark_journal::Appended::Existing { .. } => (false, None),
            };
            Ok(Sent {
                event_id,
                seq: appended.seq(),
                new,
                entry_hash,
            })
        }
        .instrument(span)
        .await
    }

    /// Installs the agency's handling of sealed personal data
    /// ([`crate::sealing`]). Call once, before serving requests: until then
    /// received events carrying sealed data are quarantined (`sealed_data`)
    /// and events with sealed sections are published without their
    /// ciphertexts. Returns false if one was installed already.
    pub fn set_sealing(&self, sealing: Arc<dyn crate::Sealing>) -> bool {
        self.ctx.sealing.set(sealing).is_ok()
    }

    /// Quarantine, duplicate and equivocation counters of this bus.
    pub fn counters(&self) -> Arc<Counters> {
        self.ctx.counters.clone()
    }

    /// The journal this bus writes.
    pub fn journal(&self) -> &Arc<Journal<SledStore>> {
        &self.ctx.journal
    }

    /// Wakes the relay (after appending outbox items without [`Bus::send`]).
    pub fn poke(&self) {
        self.ctx.relay_wake.notify_one();
    }

    /// Cancels the tasks and waits for them to stop.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Case-view entries a send's policy check catches up on the async thread
/// ([`crate::check::try_policy`]); further behind, it runs on a blocking
/// thread.
const SMALL_POLICY: usize = 32;

/// What a send still has to do once its append is staged.
struct Sending {
    event_id: EventId,
    case: Option<CaseId>,
    /// Trace headers for the relay.
    stash: HashMap<String, String>,
    has_recipient: bool,
    request: Option<(Vec<u8>, Vec<u8>)>,
}

/// A send's journal step so far.
enum Staging {
    /// Nothing to commit: the event (or the request) is journaled already.
    Done(Appended),
    /// Ordered; durable once the commit holding it is.
    Staged(Staged),
}

impl Sending {
    /// The policy check applied the event to the cached case view: an
    /// event that is not journaled after all must leave it.
    fn invalidate(&self, ctx: &Ctx) {
        if let Some(c) = &self.case {
            ctx.cache.invalidate(c);
        }
    }

    /// After the commit: keeps the case view true, notes the event in
    /// flight and wakes the relay (on the thread that saw the commit, so an
    /// idle worker starts it at once, not behind this caller's answer).
    fn finish(
        self,
        ctx: &Ctx,
        appended: Result<Appended, JournalError>,
    ) -> Result<Appended, SendError> {
        let appended = appended.map_err(|e| {
            self.invalidate(ctx);
            SendError::Journal(e)
        })?;
        let new = matches!(appended, Appended::New { .. });
        // An answered request journaled another event instead.
        if self.request.is_some() && !new {
            self.invalidate(ctx);
        }
        if self.has_recipient {
            if new
                && let Ok(mut s) = ctx.in_flight.lock()
                && s.len() < crate::meter::MAX_IN_FLIGHT
            {
                s.insert(self.event_id, crate::meter::InFlight::now(self.stash));
            }
            ctx.relay_wake.notify_one();
        }
        Ok(appended)
    }
}

/// A send's checks and staging on the async thread, when they need no
/// blocking read (the event id lookup and a cached case view a few entries
/// behind are point reads of cached data); `None`: do it on a blocking
/// thread ([`stage_blocking`]).
fn stage_here(
    ctx: &Ctx,
    wire: &WireEvent,
    event: &PbEvent,
    to: &Sending,
) -> Result<Option<Staging>, SendError> {
    if let Some(seq) = ctx
        .journal
        .event_seq(&to.event_id)
        .map_err(SendError::Journal)?
    {
        return Ok(Some(Staging::Done(Appended::Existing { seq })));
    }
    match crate::check::try_policy(ctx, wire, SMALL_POLICY).map_err(SendError::Journal)? {
        None => Ok(None),
        Some(Err(detail)) => Err(SendError::Refused(detail)),
        Some(Ok(())) => stage(ctx, event, to).map(Some),
    }
}

/// [`stage_here`] on a blocking thread: the case view may be folded from
/// the journal.
fn stage_blocking(
    ctx: &Ctx,
    wire: &WireEvent,
    event: &PbEvent,
    to: &Sending,
) -> Result<Staging, SendError> {
    if let Some(seq) = ctx
        .journal
        .event_seq(&to.event_id)
        .map_err(SendError::Journal)?
    {
        return Ok(Staging::Done(Appended::Existing { seq }));
    }
    if let Err(detail) = crate::check::policy(ctx, wire).map_err(SendError::Journal)? {
        return Err(SendError::Refused(detail));
    }
    stage(ctx, event, to)
}

/// Signs the checked event and stages its append (with the request record
/// and the outbox item, atomically).
fn stage(ctx: &Ctx, event: &PbEvent, to: &Sending) -> Result<Staging, SendError> {
    let env = sign_envelope(&ctx.key, PAYLOAD_TYPE_EVENT, event.encode_to_vec());
    let bytes = env.encode_to_vec();
    let staged = match &to.request {
        None => ctx.journal.stage_originated(&bytes, Timestamp::now()),
        Some((k, v)) => ctx
            .journal
            .stage_originated_for_request(&bytes, Timestamp::now(), k, v),
    };
    staged.map(Staging::Staged).map_err(|e| {
        to.invalidate(ctx);
        SendError::Journal(e)
    })
}

/// Waits for a staged send without holding a thread, from its first
/// [`Journal::progress`] answer: asks again after every commit step. When
/// its batch needs a leader, this send leads the commit on a blocking
/// thread (one per batch, however many sends are in it) and finishes there.
async fn durable(
    ctx: Arc<Ctx>,
    staged: Staged,
    to: Sending,
    mut answer: Result<Progress, JournalError>,
) -> Result<Appended, SendError> {
    loop {
        match answer {
            Ok(Progress::Durable(a)) => return to.finish(&ctx, Ok(a)),
            Err(e) => return to.finish(&ctx, Err(e)),
            Ok(Progress::Lead) => {
                return lead(ctx.clone(), staged, to)
                    .await
                    .map_err(SendError::Task)?;
            }
            Ok(Progress::Wait) => {}
        }
        let notified = ctx.commits.notified();
        tokio::pin!(notified);
        // Registered before asking: a commit step between the answer and
        // the wait still wakes it.
        notified.as_mut().enable();
        answer = ctx.journal.progress(&staged);
        if matches!(answer, Ok(Progress::Wait)) {
            notified.await;
        }
    }
}

/// Leads the commit of `staged`'s batch on a blocking thread (told to by
/// [`Journal::progress`]) and finishes the send there.
fn lead(
    ctx: Arc<Ctx>,
    staged: Staged,
    to: Sending,
) -> tokio::task::JoinHandle<Result<Appended, SendError>> {
    tokio::task::spawn_blocking(move || {
        let appended = ctx.journal.lead(staged);
        to.finish(&ctx, appended)
    })
}
