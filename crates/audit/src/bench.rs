//! Measurements for `cargo bench -p waymark-audit --features bench`:
//! audited events/s over a synthetic federation ([`crate::synth`]), next to
//! raw single-signature Ed25519 `verify_strict` on one core, measured in
//! the same run; and the audit's memory per event on long cases.
//!
//! "Events" are event entries (ORIGINATED and RECEIVED) in all journals:
//! each carries one signature the audit verifies, so the ratio compares
//! like with like. The audit also hashes, decodes, links and replays every
//! one of them through the policy core.
//!
//! # Robustness on a noisy machine
//! A shared VM's speed drifts over seconds. So the two are measured in short
//! alternating rounds (baseline then audit, audit then baseline, ...; the
//! first round of each is a discarded warm-up), each round's ratio is taken
//! against the baseline measured next to it, and the table reports the
//! median ratio with its spread (min–max over the rounds).

use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use waymark_crypto::{AgencyKey, pae};
use waymark_proto::PAYLOAD_TYPE_EVENT;

use crate::synth::{self, Shape};
use crate::{AuditOptions, audit_dir};

type Error = Box<dyn std::error::Error>;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Cases of the synthetic federation audited in every round.
    pub cases: usize,
    /// Measured rounds per row (after one warm-up round).
    pub rounds: usize,
}

/// Set in the child process of the memory measurement.
pub const MEMORY_CHILD: &str = "WAYMARK_BENCH_MEMORY_SERVICES";
/// Cases of the memory measurement (few, with many events each).
const MEMORY_CASES: usize = 4;

/// Raw single-signature verification: messages shaped like event PAEs.
struct Baseline {
    key: VerifyingKey,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<Signature>,
}

impl Baseline {
    fn new(n: usize) -> Self {
        let key = AgencyKey::generate();
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|i| pae(PAYLOAD_TYPE_EVENT, format!("{i:0>300}").as_bytes()))
            .collect();
        let sigs = msgs.iter().map(|m| key.sign(m)).collect();
        Self {
            key: key.public_key(),
            msgs,
            sigs,
        }
    }

    /// One round: signatures per second on this thread.
    fn round(&self) -> Result<f64, Error> {
        let t = Instant::now();
        let mut ok = 0usize;
        for (m, s) in self.msgs.iter().zip(&self.sigs) {
            ok += usize::from(self.key.verify_strict(m, s).is_ok());
        }
        let rate = self.msgs.len() as f64 / t.elapsed().as_secs_f64();
        if ok != self.msgs.len() {
            return Err("baseline signatures failed".into());
        }
        Ok(rate)
    }
}

/// One audit round: event entries per second.
fn audit_round(dir: &Path, threads: usize, events: u64) -> Result<f64, Error> {
    let opts = AuditOptions {
        threads,
        ..AuditOptions::default()
    };
    let t = Instant::now();
    let report = audit_dir(dir, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    if !report.clean || !report.findings.is_empty() {
        return Err(format!(
            "synthetic federation not clean: {:?}",
            report.findings.first()
        )
        .into());
    }
    Ok(events as f64 / secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// One row of alternating rounds: the audit with `threads` verification
/// threads and the baseline measured next to it, per round.
#[derive(Debug, Clone)]
pub struct ThroughputRow {
    /// Verification threads of the audit.
    pub threads: usize,
    /// Audited event entries per second, per round.
    pub audit: Vec<f64>,
    /// Raw single-core `verify_strict` signatures per second, per round,
    /// measured next to the audit round of the same index.
    pub baseline: Vec<f64>,
}

impl ThroughputRow {
    /// Per-round ratios `audit / baseline`.
    pub fn ratios(&self) -> Vec<f64> {
        self.audit
            .iter()
            .zip(&self.baseline)
            .map(|(a, b)| a / b)
            .collect()
    }
}

/// The throughput measurement: one row for one verification thread and one
/// for one per core.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Event entries in the synthetic federation.
    pub events: u64,
    /// Cases in it.
    pub cases: usize,
    /// Seconds it took to build it.
    pub built_secs: f64,
    /// Cores of this machine.
    pub cores: usize,
    /// Measured rounds per row (after one warm-up).
    pub rounds: usize,
    /// The rows, 1 thread first, then one per core.
    pub rows: Vec<ThroughputRow>,
}

/// Builds the federation and runs the interleaved rounds for one
/// verification thread and for one per core (what `waymark bench` reports
/// as P3, and [`run`] formats).
///
/// # Errors
/// I/O errors, or an audit that is not clean.
pub fn throughput(plan: Plan) -> Result<Throughput, Error> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let events = synth::write(dir.path(), plan.cases)?;
    let built = t.elapsed();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // About as long as an audit round on one core.
    let baseline = Baseline::new(usize::try_from(events)?.clamp(1000, 10_000));
    let threads = [1, cores];
    let mut rows: Vec<ThroughputRow> = threads
        .iter()
        .map(|&t| ThroughputRow {
            threads: t,
            audit: Vec::new(),
            baseline: Vec::new(),
        })
        .collect();
    for round in 0..=plan.rounds {
        for row in &mut rows {
            let th = row.threads;
            let (b, a) = if round % 2 == 0 {
                let b = baseline.round()?;
                (b, audit_round(dir.path(), th, events)?)
            } else {
                let a = audit_round(dir.path(), th, events)?;
                (baseline.round()?, a)
            };
            if round > 0 {
                row.audit.push(a);
                row.baseline.push(b);
            }
        }
    }
    Ok(Throughput {
        events,
        cases: plan.cases,
        built_secs: built.as_secs_f64(),
        cores,
        rounds: plan.rounds,
        rows,
    })
}

/// Runs [`throughput`], measures memory on long cases, and returns the
/// report (Markdown).
///
/// # Errors
/// I/O errors, or an audit that is not clean (the synthetic federation
/// must audit clean).
pub fn run(plan: Plan) -> Result<String, Error> {
    let tp = throughput(plan)?;
    let (events, cores) = (tp.events, tp.cores);
    let built = std::time::Duration::from_secs_f64(tp.built_secs);
    let mut out = String::new();
    writeln!(
        out,
        "waymark-audit bench: {} cases, {events} event entries in 3 journals (built in {:.1} s), \
         {cores} core(s), {} alternating rounds per row after one warm-up",
        tp.cases,
        built.as_secs_f64(),
        tp.rounds
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| measurement | median per second | spread (min–max) | ratio to raw verify_strict (1 core), median | ratio spread (min–max) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    let mut all_baseline: Vec<f64> = tp.rows.iter().flat_map(|r| r.baseline.clone()).collect();
    let (blo, bhi) = spread(&all_baseline);
    writeln!(
        out,
        "| raw Ed25519 verify_strict, 1 core | {:.0} sig/s | {blo:.0}–{bhi:.0} | 1.00 | |",
        median(&mut all_baseline)
    )?;
    let mut best = 0f64;
    for row in &tp.rows {
        let mut ratio = row.ratios();
        let (alo, ahi) = spread(&row.audit);
        let (rlo, rhi) = spread(&ratio);
        let r = median(&mut ratio);
        best = best.max(r);
        writeln!(
            out,
            "| audit, {} verify thread(s) | {:.0} events/s | {alo:.0}–{ahi:.0} | {r:.2} | {rlo:.2}–{rhi:.2} |",
            row.threads,
            median(&mut row.audit.clone())
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "target: audit ≥ 1.5× raw single-core verify_strict: {} (best median ratio {best:.2})",
        if best >= 1.5 { "met" } else { "NOT met" }
    )?;
    writeln!(out)?;
    out.push_str(&memory()?);
    Ok(out)
}

/// The memory rows: two long-case federations audited in fresh processes.
fn memory() -> Result<String, Error> {
    let mut rows = Vec::new();
    for services in [2_000usize, 50_000] {
        let exe = std::env::current_exe()?;
        let out = Command::new(exe)
            .env(MEMORY_CHILD, services.to_string())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "memory child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let field = |k: &str| -> Option<u64> {
            text.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
        };
        match (field("events="), field("peak_kib=")) {
            (Some(e), Some(k)) => rows.push((e, k)),
            _ => return Err(format!("memory child said: {text}").into()),
        }
    }
    let mut out = String::new();
    writeln!(
        out,
        "| memory, {MEMORY_CASES} long cases, 1 verify thread | event entries | peak RSS |"
    )?;
    writeln!(out, "|---|---:|---:|")?;
    for (e, k) in &rows {
        writeln!(
            out,
            "| audit in a fresh process | {e} | {:.1} MiB |",
            *k as f64 / 1024.0
        )?;
    }
    let ((e1, k1), (e2, k2)) = (rows[0], rows[1]);
    writeln!(
        out,
        "| growth per added event | | {:.0} B |",
        (k2.saturating_sub(k1) * 1024) as f64 / (e2 - e1) as f64
    )?;
    Ok(out)
}

/// The child of the memory measurement: audits `services` per case on
/// [`MEMORY_CASES`] cases and returns `events=… peak_kib=…`.
///
/// # Errors
/// I/O errors, an audit that is not clean, or no `/proc/self/status`.
pub fn memory_child(services: usize) -> Result<String, Error> {
    let dir = tempfile::tempdir()?;
    let events = synth::write_shape(
        dir.path(),
        Shape {
            cases: MEMORY_CASES,
            services,
        },
    )?;
    audit_round(dir.path(), 1, events)?;
    let peak = crate::memory::peak_rss_kib().ok_or("no VmHWM in /proc/self/status")?;
    Ok(format!("events={events} peak_kib={peak}"))
}
