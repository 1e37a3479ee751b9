//! Measurements for `cargo bench -p waymark-journal --features bench` and the
//! `waymark bench` command: our figures next to raw baselines measured in the
//! same run on the same disk.
//!
//! - Durable appends/s with 1, 4 and 16 concurrent appenders, next to a raw
//!   sled loop (insert `B` values of the same size, `flush()`, then
//!   `sync_data()` on sled's data file) at the same average batch size `B`
//!   that our group commit reached.
//!   Fairness: the baseline uses the batch size our run reached (rounded) and
//!   values as long as our entry bytes, the same sled cache size, in a fresh
//!   directory on the same disk, measured right after ours for as long. It
//!   does not write our extra per-entry data (hash, Merkle nodes, case and
//!   event indexes), so it favours the baseline. On a shared virtual disk
//!   fsync latency drifts by several times within a minute: compare ratios
//!   over repeated runs, not single rows.
//! - Whole-journal verification entries/s, next to raw Ed25519
//!   `verify_strict` of as many signatures.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use waymark_crypto::{AgencyKey, KeyRing, pae, proto_from_timestamp, sign_envelope};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{Event, PublicKey};
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

use crate::merkle::Hash;
use crate::store::{
    Batch, JournalStore, OutboxItem, StoreError, StoredCheckpoint, StoredCosignature, StoredEntry,
};
use crate::{ExportMeta, Journal, JournalConfig, SledConfig, SledStore, verify_journal};

/// One line of the result table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// What was measured.
    pub name: String,
    /// Our figure (per second).
    pub ours: f64,
    /// The raw baseline (per second).
    pub baseline: f64,
    /// `ours / baseline`.
    pub ratio: f64,
    /// How the baseline was measured.
    pub baseline_name: String,
}

/// How long and how large to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Time per append measurement.
    pub duration: Duration,
    /// Entries in the journal whose verification is timed.
    pub verify_entries: u64,
    /// Concurrency levels for appends.
    pub appenders: Vec<usize>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            verify_entries: 20_000,
            appenders: vec![1, 4, 16],
        }
    }
}

/// A failure while benchmarking.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Creating the scratch directory failed.
    #[error("creating a scratch directory")]
    TempDir(#[source] std::io::Error),
    /// The journal failed.
    #[error("journal")]
    Journal(#[from] crate::JournalError),
    /// sled or the file system failed in a baseline.
    #[error("baseline: {0}")]
    Baseline(String),
    /// Verification failed (a bug).
    #[error("verification")]
    Verify(#[from] crate::VerifyFailure),
}

/// Counts commits, to know the group-commit batch size reached.
struct Counting<S> {
    inner: S,
    commits: AtomicU64,
}

impl<S: JournalStore> JournalStore for Counting<S> {
    fn commit(&self, b: &Batch) -> Result<(), StoreError> {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.commit(b)
    }
    fn size(&self) -> Result<u64, StoreError> {
        self.inner.size()
    }
    fn entry(&self, seq: u64) -> Result<Option<StoredEntry>, StoreError> {
        self.inner.entry(seq)
    }
    fn node(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        self.inner.node(level, index)
    }
    fn case_seqs(&self, c: &CaseId, after: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.inner.case_seqs(c, after, limit)
    }
    fn event_seq(&self, e: &EventId) -> Result<Option<u64>, StoreError> {
        self.inner.event_seq(e)
    }
    fn outbox(&self, after: u64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.inner.outbox(after, limit)
    }
    fn outbox_contains(&self, seq: u64, r: &AgencyId) -> Result<bool, StoreError> {
        self.inner.outbox_contains(seq, r)
    }
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints(from, limit)
    }
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint()
    }
    fn cosignatures(&self, size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        self.inner.cosignatures(size)
    }
}

fn agency(s: &str) -> Result<AgencyId, BenchError> {
    AgencyId::new(s).map_err(|e| BenchError::Baseline(e.to_string()))
}

fn envelopes(key: &AgencyKey, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let ev = Event {
                event_id: EventId::new().to_string(),
                case_id: CaseId::new().to_string(),
                sender_id: "police-a".into(),
                recipient_id: if i % 2 == 0 {
                    "shelter-b".into()
                } else {
                    String::new()
                },
                occurred_at: Some(proto_from_timestamp(Timestamp::from_millis(1))),
                rule_set: "coe-cets197@1".into(),
                ..Event::default()
            };
            sign_envelope(key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec()
        })
        .collect()
}

fn open_journal(dir: &Path, key: &AgencyKey) -> Result<Journal<Counting<SledStore>>, BenchError> {
    let store = SledStore::open(dir, &SledConfig::default()).map_err(|source| {
        crate::JournalError::Store {
            step: "opening the bench store",
            source,
        }
    })?;
    let mut cfg = JournalConfig::new(agency("police-a")?);
    cfg.checkpoint_every_entries = u64::MAX;
    cfg.checkpoint_every_ms = i64::MAX;
    Ok(Journal::open(
        Counting {
            inner: store,
            commits: AtomicU64::new(0),
        },
        cfg,
        Some(key.clone()),
    )?)
}

/// Durable appends/s with `threads` appenders for `duration`; returns the
/// rate, the average batch size and the average entry size.
fn appends(
    threads: usize,
    duration: Duration,
    key: &AgencyKey,
) -> Result<(f64, f64, usize), BenchError> {
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let j = open_journal(dir.path(), key)?;
    let pool: Vec<Vec<Vec<u8>>> = (0..threads).map(|_| envelopes(key, 12_000)).collect();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let outcome: (bool, f64) = std::thread::scope(|s| {
        let handles: Vec<_> = pool
            .iter()
            .map(|envs| {
                let (j, stop, done) = (&j, &stop, &done);
                s.spawn(move || -> Result<(), crate::JournalError> {
                    for env in envs {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        j.append_originated(env, Timestamp::from_millis(1))?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        // Run for `duration` or until every appender used up its pool.
        while start.elapsed() < duration && handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let failed = handles
            .into_iter()
            .map(|h| h.join())
            .any(|r| !matches!(r, Ok(Ok(()))));
        (failed, start.elapsed().as_secs_f64())
    });
    let (failed, elapsed) = outcome;
    if failed {
        return Err(BenchError::Baseline("an appender failed".into()));
    }
    let n = done.load(Ordering::Relaxed);
    let commits = j.store().commits.load(Ordering::Relaxed).max(1);
    let entry_len = j.entry(1)?.map_or(200, |e| e.len());
    Ok((n as f64 / elapsed, n as f64 / commits as f64, entry_len))
}

/// The raw loop: `batch` sled inserts of `value_len` bytes, `flush()`, then
/// `sync_data()` on sled's data file; items/s.
fn raw_sled(batch: usize, value_len: usize, duration: Duration) -> Result<f64, BenchError> {
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let e = |x: &dyn std::fmt::Display| BenchError::Baseline(x.to_string());
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .open()
        .map_err(|x| e(&x))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("db"))
        .map_err(|x| e(&x))?;
    let value = vec![0x5a_u8; value_len];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        for _ in 0..batch {
            db.insert(n.to_be_bytes(), value.as_slice())
                .map_err(|x| e(&x))?;
            n += 1;
        }
        db.flush().map_err(|x| e(&x))?;
        file.sync_data().map_err(|x| e(&x))?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs every measurement.
///
/// # Errors
/// [`BenchError`] if a scratch directory, the journal or a baseline fails.
pub fn run(opts: &BenchOptions) -> Result<Vec<BenchRow>, BenchError> {
    let key = AgencyKey::generate();
    let mut rows = Vec::new();
    for &threads in &opts.appenders {
        let (ours, batch, entry_len) = appends(threads, opts.duration, &key)?;
        let b = batch.round().max(1.0) as usize;
        let baseline = raw_sled(b, entry_len, opts.duration)?;
        rows.push(BenchRow {
            name: format!("durable appends/s, {threads} appender(s) (avg batch {batch:.1})"),
            ours,
            baseline,
            ratio: ours / baseline,
            baseline_name: format!("sled insert x{b} + flush + fdatasync"),
        });
    }

    // Verification.
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let j = open_journal(dir.path(), &key)?;
    let envs = envelopes(&key, usize::try_from(opts.verify_entries).unwrap_or(20_000));
    std::thread::scope(|s| {
        for chunk in envs.chunks(envs.len().div_ceil(16).max(1)) {
            let j = &j;
            s.spawn(move || {
                for env in chunk {
                    let _ = j.append_originated(env, Timestamp::from_millis(1));
                }
            });
        }
    });
    j.checkpoint_now(Timestamp::from_millis(2))?;
    let meta = ExportMeta {
        agency_kind: AgencyKind::Police,
        keys: vec![PublicKey {
            key_id: key.key_id().to_string(),
            ed25519: key.public_key().to_bytes().to_vec(),
            valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
            valid_until: None,
        }],
        exported_at: Timestamp::from_millis(3),
    };
    let start = Instant::now();
    let summary = verify_journal(&j, &meta, &KeyRing::new())?;
    let ours = summary.entries as f64 / start.elapsed().as_secs_f64();

    let msgs: Vec<(Vec<u8>, ed25519_dalek::Signature)> = envs
        .iter()
        .filter_map(|b| waymark_proto::v1::Envelope::decode(b.as_slice()).ok())
        .filter_map(|e| {
            let sig = ed25519_dalek::Signature::from_slice(&e.signatures.first()?.sig).ok()?;
            Some((pae(&e.payload_type, &e.payload), sig))
        })
        .collect();
    let pk = key.public_key();
    let start = Instant::now();
    let mut ok = 0u64;
    for (m, s) in &msgs {
        ok += u64::from(pk.verify_strict(m, s).is_ok());
    }
    let baseline = ok as f64 / start.elapsed().as_secs_f64();
    rows.push(BenchRow {
        name: format!("verification entries/s ({} entries)", summary.entries),
        ours,
        baseline,
        ratio: ours / baseline,
        baseline_name: "ed25519 verify_strict, one by one".into(),
    });
    Ok(rows)
}

/// Formats rows as a plain-text table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<58} {:>12} {:>12} {:>7}  baseline\n",
        "measurement", "ours/s", "baseline/s", "ratio"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<58} {:>12.0} {:>12.0} {:>7.2}  {}\n",
            r.name, r.ours, r.baseline, r.ratio, r.baseline_name
        ));
    }
    s
}
