//! P1 and P2: durable end to end between two agency **processes**.
//!
//! # Setup (not timed)
//! `waymark_federation` starts a nats-server (JetStream, the launcher's
//! settings) and two `waymark serve` processes, police and a shelter, with
//! production configuration. At police, [`CASES`] cases are opened, each
//! with a consent covering shelters for accommodation, forwarded to the
//! shelter (so the shelter's policy knows the basis).
//!
//! # One event
//! `ReferralService.RequestReferral` at police for one of the cases, to the
//! shelter on that consent: police journals it (fsync) and queues it, its
//! relay publishes it, the shelter verifies, checks the policy, journals it
//! (fsync) and sends a signed receipt, police journals the receipt (fsync).
//! The event counts once that receipt is in police's journal: a watcher
//! follows police's `InboxService.Subscribe` stream (as a back-office system
//! would; the agency wakes it at every journal commit) and matches receipts
//! to referral ids.
//!
//! # Rounds
//! P1: [`CALLERS`] concurrent callers, each awaiting its call, for a round;
//! then the round waits for every receipt: events/s = events / (last
//! receipt − start). The raw side ([`crate::raw_js`]) runs as many
//! publishers, each awaiting its PubAck, and counts to the last message
//! consumed. P2: one call (or publish) every `1/rate` s, each in its own
//! task; latency from the call's start to its receipt at police; p50 and
//! p99 per round. P2 has two raw baselines: the same exchange over raw
//! JetStream (publish, a responder publishes a reply, consume the reply:
//! [`crate::raw_js`]), which the target is set against, since our figure
//! is a round trip through the broker too; and the one-way hop (publish →
//! consume), shown for reference. Rounds alternate which side goes first;
//! ratios are per round.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tonic::transport::Channel;
use waymark_federation::demo::api::{Agency, consent, in_days, key};
use waymark_federation::{Federation, LaunchOptions, SAMPLE};
use waymark_proto::v1 as pb;
use waymark_proto::v1::inbox_service_client::InboxServiceClient;
use waymark_types::AgencyKind;

use crate::raw_js::RawJs;
use crate::{Figure, Options, Target};

/// Cases the events are spread over (the relay sends one event per case
/// and recipient at a time, as per-case order requires).
pub const CASES: usize = 64;
/// Concurrent callers in P1.
pub const CALLERS: usize = 16;
/// How often a round checks whether all its receipts are in.
pub const POLL: Duration = Duration::from_millis(2);
/// P1's target: ours ≥ 0.5 × raw.
pub const P1_TARGET: f64 = 0.5;
/// P2's target: our p99 ≤ 3 × the raw round trip's p99.
pub const P2_TARGET: f64 = 3.0;

/// Runs P1 and/or P2 (as selected) on one federation.
///
/// # Errors
/// If the federation does not start, a call fails, or receipts do not
/// arrive within two minutes.
pub async fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir().context("creating the federation directory")?;
    let members: Vec<_> = SAMPLE
        .iter()
        .filter(|m| m.id == "bg-police-sofia" || m.id == "bg-shelter-sofia")
        .copied()
        .collect();
    let mut lo = LaunchOptions::sample(dir.path(), opts.program.clone());
    lo.members = members;
    lo.log_filter = "warn".to_owned();
    progress("P1/P2: starting nats-server, police and shelter processes");
    let fed = Federation::start(lo).await?;
    let out = measure(opts, &fed, progress).await;
    fed.stop().await.ok();
    out
}

async fn measure(
    opts: &Options,
    fed: &Federation,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Figure>> {
    let ep = |id: &str| {
        fed.endpoints()
            .get(id)
            .map(Agency::new)
            .with_context(|| format!("{id} is not running"))
    };
    let (police, shelter) = (ep("bg-police-sofia")?, ep("bg-shelter-sofia")?);
    let driver = Driver::setup(police, shelter).await?;
    let mut raw = RawJs::start().await?;
    let rounds = opts.pick(6, 2);
    let mut figures = Vec::new();
    if opts.wants("P1") {
        progress("P1: durable end-to-end events/s vs raw JetStream publish → consume");
        let d = opts.secs(3.0, 1.0);
        // Warm-up, discarded.
        driver.throughput(CALLERS, d).await?;
        raw.throughput(CALLERS, d).await?;
        let (mut ours, mut base) = (vec![], vec![]);
        for r in 0..rounds {
            if r % 2 == 0 {
                ours.push(driver.throughput(CALLERS, d).await?);
                base.push(raw.throughput(CALLERS, d).await?);
            } else {
                base.push(raw.throughput(CALLERS, d).await?);
                ours.push(driver.throughput(CALLERS, d).await?);
            }
        }
        figures.push(Figure::from_rounds(
            "P1",
            "durable end-to-end events/s, police → shelter → receipt journaled back",
            "events/s",
            &ours,
            &base,
            format!("JetStream publish (await PubAck) → pull consumer ack, {CALLERS} publishers"),
            Target::RatioAtLeast(P1_TARGET),
            format!("{CALLERS} concurrent gRPC callers, {CASES} cases; two agency processes"),
        ));
    }
    if opts.wants("P2") {
        let rate = opts.p2_rate.max(1);
        progress(&format!("P2: latency at {rate} events/s vs raw JetStream"));
        let d = opts.secs(5.0, 1.5);
        driver.latencies(rate, d).await?;
        raw.round_trips(rate, d).await?;
        raw.latencies(rate, d).await?;
        // Per round: ours, the raw round trip, the raw one-way hop; p50, p99.
        let mut q: [[Vec<f64>; 2]; 3] = Default::default();
        for r in 0..rounds {
            let (o, rt, one) = if r % 2 == 0 {
                let o = driver.latencies(rate, d).await?;
                let rt = raw.round_trips(rate, d).await?;
                (o, rt, raw.latencies(rate, d).await?)
            } else {
                let one = raw.latencies(rate, d).await?;
                let rt = raw.round_trips(rate, d).await?;
                (driver.latencies(rate, d).await?, rt, one)
            };
            for (i, v) in [o, rt, one].iter().enumerate() {
                q[i][0].push(percentile_ms(v, 0.50));
                q[i][1].push(percentile_ms(v, 0.99));
            }
        }
        let [ours, rt, one] = q;
        let note = format!(
            "fixed offered load {rate} events/s, {:.1} s per round",
            d.as_secs_f64()
        );
        let round_trip = format!(
            "JetStream round trip: publish → pull consumer → reply published → pull consumer, same {rate}/s"
        );
        let one_way = format!("JetStream one way: publish → pull consumer, same {rate}/s");
        for (base, name, suffix, targets) in [
            (
                &rt,
                round_trip,
                "",
                [Target::None, Target::RatioAtMost(P2_TARGET)],
            ),
            (
                &one,
                one_way,
                ", against one broker hop",
                [Target::None, Target::None],
            ),
        ] {
            for ((p, target), (o, b)) in ["p50", "p99"]
                .into_iter()
                .zip(targets)
                .zip(ours.iter().zip(base.iter()))
            {
                figures.push(Figure::from_rounds(
                    "P2",
                    format!("{p} latency, call → receipt journaled back{suffix}"),
                    "ms",
                    o,
                    b,
                    name.clone(),
                    target,
                    note.clone(),
                ));
            }
        }
    }
    Ok(figures)
}

/// The `q` quantile of `v` in milliseconds (nearest rank).
pub fn percentile_ms(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
    ms[rank - 1]
}

/// Calls in flight and receipts seen, matched by referral (event) id.
#[derive(Default)]
struct Track {
    started: HashMap<String, Instant>,
    /// Receipts seen before their call returned (or of other events).
    early: HashMap<String, Instant>,
    /// (receipt seen, latency) per completed event.
    done: Vec<(Instant, Duration)>,
}

struct Driver {
    police: Agency,
    shelter: Agency,
    cases: Vec<(String, String)>,
    track: Arc<Mutex<Track>>,
    watcher: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Driver {
    async fn setup(police: Agency, shelter: Agency) -> anyhow::Result<Self> {
        let mut cases = Vec::new();
        for _ in 0..CASES {
            let case = police
                .case()
                .open_case(pb::OpenCaseRequest {
                    idempotency_key: key(),
                    channel: pb::IdentificationChannel::LabourInspection as i32,
                    presumed_child: false,
                    forms: vec![pb::ExploitationForm::Labour as i32],
                    anonymous: false,
                    personal: None,
                })
                .await
                .context("OpenCase")?
                .into_inner()
                .case_id;
            let c = consent(
                &[AgencyKind::Shelter],
                &[pb::Purpose::Accommodation, pb::Purpose::Assistance],
                false,
            );
            let consent_id = police
                .consent()
                .grant_consent(pb::GrantConsentRequest {
                    idempotency_key: key(),
                    case_id: case.clone(),
                    consent: Some(c),
                })
                .await
                .context("GrantConsent")?
                .into_inner()
                .consent_id;
            police
                .case()
                .forward_event(pb::ForwardEventRequest {
                    idempotency_key: key(),
                    case_id: case.clone(),
                    event_id: consent_id.clone(),
                    send_to: Some(shelter.forward()),
                })
                .await
                .context("ForwardEvent")?;
            cases.push((case, consent_id));
        }
        let track = Arc::new(Mutex::new(Track::default()));
        let watcher = tokio::spawn(watch(police.channel(), track.clone()));
        Ok(Self {
            police,
            shelter,
            cases,
            track,
            watcher,
        })
    }

    fn lock(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Track>> {
        self.track
            .lock()
            .map_err(|_| anyhow::anyhow!("the receipt watcher panicked"))
    }

    /// One RequestReferral for the `i`th event; returns when police has
    /// journaled it, having registered it with the watcher.
    async fn call(&self, i: usize) -> anyhow::Result<()> {
        let (case, consent_id) = &self.cases[i % self.cases.len()];
        let t0 = Instant::now();
        let id = self
            .police
            .referral()
            .request_referral(pb::RequestReferralRequest {
                idempotency_key: key(),
                case_id: case.clone(),
                service: pb::ServiceType::Accommodation as i32,
                send_to: Some(
                    self.shelter
                        .on_consent(consent_id, pb::Purpose::Accommodation),
                ),
                respond_by: Some(in_days(5)),
                urgent: false,
            })
            .await
            .context("RequestReferral at police")?
            .into_inner()
            .referral_id;
        let mut t = self.lock()?;
        match t.early.remove(&id) {
            Some(seen) => t.done.push((seen, seen.saturating_duration_since(t0))),
            None => {
                t.started.insert(id, t0);
            }
        }
        Ok(())
    }

    fn reset(&self) -> anyhow::Result<()> {
        let mut t = self.lock()?;
        t.early.clear();
        t.done.clear();
        if !t.started.is_empty() {
            bail!(
                "{} events of an earlier round have no receipt",
                t.started.len()
            );
        }
        Ok(())
    }

    /// Waits until `n` events of this round are receipted.
    async fn wait_done(&self, n: usize) -> anyhow::Result<Vec<(Instant, Duration)>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            {
                let t = self.lock()?;
                if t.done.len() >= n {
                    return Ok(t.done.clone());
                }
            }
            if self.watcher.is_finished() {
                bail!("the receipt watcher stopped");
            }
            if Instant::now() > deadline {
                bail!("receipts of {n} events did not all arrive within 120 s");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn throughput(&self, callers: usize, duration: Duration) -> anyhow::Result<f64> {
        self.reset()?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let start = Instant::now();
        let workers = (0..callers).map(|_| async {
            while start.elapsed() < duration {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.call(i).await?;
            }
            anyhow::Ok(())
        });
        for r in futures::future::join_all(workers).await {
            r?;
        }
        let n = next.load(std::sync::atomic::Ordering::Relaxed);
        let done = self.wait_done(n).await?;
        let last = done.iter().map(|(t, _)| *t).max().unwrap_or(start);
        Ok(n as f64 / last.duration_since(start).as_secs_f64())
    }

    async fn latencies(&self, rate: u32, duration: Duration) -> anyhow::Result<Vec<Duration>> {
        self.reset()?;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        let start = Instant::now();
        let mut calls = futures::stream::FuturesUnordered::new();
        let mut n = 0usize;
        while start.elapsed() < duration {
            tokio::select! {
                _ = tick.tick() => {
                    calls.push(self.call(n));
                    n += 1;
                }
                Some(r) = calls.next() => r?,
            }
        }
        while let Some(r) = calls.next().await {
            r?;
        }
        Ok(self
            .wait_done(n)
            .await?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }
}

/// Follows police's inbox (`InboxService.Subscribe`, live from its start),
/// matching every receipt police journals to the call that caused it.
async fn watch(channel: Channel, track: Arc<Mutex<Track>>) -> anyhow::Result<()> {
    let mut client = InboxServiceClient::new(channel);
    let mut s = client
        .subscribe(pb::SubscribeRequest {
            after_cursor: 0,
            include_quarantined: false,
        })
        .await
        .context("Subscribe at police")?
        .into_inner();
    while let Some(item) = s.next().await {
        let item = item.context("reading police's inbox")?;
        if let Some(id) = item.event.and_then(receipted) {
            let now = Instant::now();
            let mut t = track
                .lock()
                .map_err(|_| anyhow::anyhow!("a caller panicked"))?;
            match t.started.remove(&id) {
                Some(t0) => t.done.push((now, now.saturating_duration_since(t0))),
                None => {
                    t.early.insert(id, now);
                }
            }
        }
    }
    bail!("police's inbox stream ended")
}

/// The event id a received event receipts, if it is a JOURNALED receipt.
fn receipted(ev: pb::Event) -> Option<String> {
    match ev.body? {
        pb::event::Body::Receipt(r) if r.status == pb::ReceiptStatus::Journaled as i32 => {
            Some(r.event?.event_id)
        }
        _ => None,
    }
}
