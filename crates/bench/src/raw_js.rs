//! The raw JetStream baseline of P1 and P2: what the broker alone costs.
//!
//! On a nats-server of its own, started exactly as the federation's (the
//! same pinned binary and launcher defaults: JetStream with file storage
//! and the server's sync settings) but without the federation's users: the
//! agencies' broker users may only touch their own consumers (per-agency
//! permissions, `waymark_federation::natsauth`), so the baseline cannot run
//! on theirs. On it, a stream with exactly the event
//! stream's settings (`waymark_bus::provision::event_stream`: file storage,
//! limits retention, the same replicas, age and duplicate window) but its own name and
//! subjects, and a durable pull consumer made by the bus's own
//! `provision::durable` (explicit acks, the same ack wait and pending
//! limit), read in batches as the inbox reads. Publishers await each
//! PubAck, as our relay does; the consumer acks every message.
//!
//! Messages carry an 8-byte sequence number then padding to the size of our
//! event envelopes, so both sides move as many bytes per event.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, Context as Js};
use bytes::Bytes;
use futures::StreamExt;
use waymark_bus::BusConfig;
use waymark_bus::provision::{durable, ensure_stream, event_stream};
use waymark_types::{AgencyId, AgencyKind};

/// Bytes per raw message (about one signed referral envelope).
pub(crate) const MESSAGE_BYTES: usize = 600;

/// The raw stream and its settings.
pub(crate) struct RawJs {
    js: Js,
    /// The baseline's own server (stopped when this is dropped) and its store.
    _server: waymark_testkit::NatsServer,
    _store: tempfile::TempDir,
    cfg: BusConfig,
    stream: jetstream::stream::Stream,
    rounds: u64,
}

impl RawJs {
    /// Starts the baseline's server, connects and provisions the raw stream.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let store = tempfile::tempdir().context("creating the raw server's store")?;
        let dir = store.path().to_owned();
        let server = tokio::task::spawn_blocking(move || {
            waymark_testkit::NatsServer::builder()
                .name("bench-raw")
                .store_dir(dir)
                .start()
        })
        .await?
        .context("starting the raw baseline's nats-server")?;
        let client = async_nats::connect(server.url())
            .await
            .context("connecting to nats-server")?;
        let js = jetstream::new(client);
        let cfg = BusConfig::new(AgencyId::new("bench-raw")?, AgencyKind::Police);
        let mut want = event_stream(&cfg);
        want.name = "BENCH_RAW".to_owned();
        want.subjects = vec!["bench.raw.>".to_owned()];
        let stream = ensure_stream(&js, want)
            .await
            .context("creating the raw stream")?;
        Ok(Self {
            js,
            _server: server,
            _store: store,
            cfg,
            stream,
            rounds: 0,
        })
    }

    /// A fresh subject and a consumer task on it that records, per message,
    /// when it arrived; returns the subject and the arrivals.
    async fn consumer(&mut self) -> anyhow::Result<(String, Arrivals)> {
        self.rounds += 1;
        let subject = format!("bench.raw.r{}", self.rounds);
        let arrivals = self.arrivals(&subject).await?;
        Ok((subject, arrivals))
    }

    /// A durable pull consumer of `subject`, read in batches as the inbox
    /// reads.
    async fn pull(&self, subject: &str) -> anyhow::Result<jetstream::consumer::pull::Stream> {
        let name = format!("bench-raw-{}", subject.replace('.', "-"));
        let consumer = durable(&self.stream, &self.cfg, name, subject.to_owned())
            .await
            .context("creating the raw consumer")?;
        consumer
            .stream()
            .max_messages_per_batch(self.cfg.inbox_batch)
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .context("reading the raw consumer")
    }

    /// A consumer task on `subject` that records when each message arrived.
    async fn arrivals(&self, subject: &str) -> anyhow::Result<Arrivals> {
        let mut messages = self.pull(subject).await?;
        let arrivals = Arrivals::default();
        let a = arrivals.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = messages.next().await {
                let now = Instant::now();
                a.arrived(seq_of(&m.payload), now);
                if m.ack().await.is_err() {
                    break;
                }
            }
        });
        Ok(arrivals)
    }

    /// P1 baseline: `callers` publishers, each awaiting every PubAck, for
    /// `duration`; returns messages/s from the first publish to the last
    /// message consumed.
    pub(crate) async fn throughput(
        &mut self,
        callers: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let (subject, arrivals) = self.consumer().await?;
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (js, subject, next) = (self.js.clone(), subject.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while start.elapsed() < duration {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    js.publish(subject.clone(), message(seq))
                        .await?
                        .await
                        .context("raw publish")?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let sent = next.load(Ordering::Relaxed);
        let last = arrivals.wait_all(sent).await?;
        Ok(sent as f64 / last.duration_since(start).as_secs_f64())
    }

    /// P2's one-way baseline: one publish every `1/rate` s for `duration`,
    /// each in its own task; returns the publish-to-consume latency of
    /// every message.
    pub(crate) async fn latencies(
        &mut self,
        rate: u32,
        duration: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let (subject, arrivals) = self.consumer().await?;
        self.offer(&subject, &arrivals, rate, duration).await
    }

    /// P2's like-for-like baseline: the exchange our figure times (an
    /// event there, its receipt back) over raw JetStream. One publish every
    /// `1/rate` s on an outbound subject; a responder (another pull
    /// consumer) publishes each message back on a return subject, awaiting
    /// the PubAck off its path as our relay does, and acks it; returns the
    /// latency from the first publish to the reply's arrival at the return
    /// consumer. No signatures and no journal: only the broker's two hops.
    pub(crate) async fn round_trips(
        &mut self,
        rate: u32,
        duration: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        self.rounds += 1;
        let out = format!("bench.raw.r{}.out", self.rounds);
        let back = format!("bench.raw.r{}.back", self.rounds);
        let arrivals = self.arrivals(&back).await?;
        let mut requests = self.pull(&out).await?;
        let js = self.js.clone();
        let responder = tokio::spawn(async move {
            while let Some(Ok(m)) = requests.next().await {
                let ack = js
                    .publish(back.clone(), m.payload.clone())
                    .await
                    .context("raw reply")?;
                tokio::spawn(ack.into_future());
                m.ack().await.map_err(|e| anyhow::anyhow!("raw ack: {e}"))?;
            }
            anyhow::Ok(())
        });
        let got = self.offer(&out, &arrivals, rate, duration).await;
        responder.abort();
        got
    }

    /// Publishes one message every `1/rate` s on `subject` for `duration`,
    /// each in its own task awaiting its PubAck, then waits until all have
    /// arrived; returns each one's time from its publish to its arrival.
    async fn offer(
        &self,
        subject: &str,
        arrivals: &Arrivals,
        rate: u32,
        duration: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        let mut seq = 0u64;
        while start.elapsed() < duration {
            tick.tick().await;
            let (js, subject, sent_at) = (self.js.clone(), subject.to_owned(), sent_at.clone());
            let s = seq;
            seq += 1;
            tasks.push(tokio::spawn(async move {
                if let Ok(mut m) = sent_at.lock() {
                    m.insert(s, Instant::now());
                }
                js.publish(subject, message(s))
                    .await?
                    .await
                    .context("raw publish")?;
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        arrivals.wait_all(seq).await?;
        let sent = sent_at
            .lock()
            .map_err(|_| anyhow::anyhow!("a publisher panicked"))?;
        let got = arrivals.take();
        let mut out = Vec::with_capacity(got.len());
        for (s, at) in got {
            if let Some(t0) = sent.get(&s) {
                out.push(at.saturating_duration_since(*t0));
            }
        }
        Ok(out)
    }
}

/// The sequence number a raw message starts with.
fn seq_of(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_be_bytes)
}

fn message(seq: u64) -> Bytes {
    let mut v = vec![0x5a_u8; MESSAGE_BYTES];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    Bytes::from(v)
}

/// When each message arrived at the consumer.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(u64, Instant)>>>);

impl Arrivals {
    fn arrived(&self, seq: u64, at: Instant) {
        if let Ok(mut v) = self.0.lock() {
            v.push((seq, at));
        }
    }

    fn take(&self) -> Vec<(u64, Instant)> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Waits (polling) until `n` messages arrived; returns the last arrival.
    async fn wait_all(&self, n: u64) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(v) = self.0.lock()
                && v.len() as u64 >= n
            {
                return Ok(v.iter().map(|(_, t)| *t).max().unwrap_or_else(Instant::now));
            }
            if Instant::now() > deadline {
                bail!("the raw consumer did not receive all {n} messages within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
