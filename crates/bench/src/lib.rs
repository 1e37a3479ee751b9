//! `waymark bench`: the five figures of issue #9, each measured next to a
//! raw baseline **in the same run**, written to `BENCHMARKS.md`.
//!
//! | figure | ours | raw baseline | target |
//! |---|---|---|---|
//! | P1 ([`e2e`]) | durable end-to-end events/s between two agency processes: RequestReferral at police → journaled at the shelter → the shelter's signed receipt journaled back at police | async-nats JetStream publish awaiting each PubAck → durable pull consumer acking each message, on a nats-server of its own started as the federation's (the agencies' broker users may not make other streams), on a stream with the event stream's settings | ratio ≥ 0.5 |
//! | P2 ([`e2e`]) | p50 and p99 latency of the same path at a fixed offered load | the same exchange over raw JetStream at the same load (publish → consume → reply → consume); the one-way publish → consume latency is reported beside it | p99 ratio to the round trip ≤ 3 |
//! | P3 ([`audit`]) | audited event entries/s (`waymark_audit::bench`) | Ed25519 `verify_strict` on one core | ratio ≥ 1.5 |
//! | P4 ([`journal`]) | durable journal appends/s, 1, 4 and 16 appenders (`waymark_journal::bench`) | sled insert × B + `flush` + `fdatasync` at our batch size B | ratio ≥ 0.7 |
//! | P5 ([`memory`]) | resident memory of a police agency process whose journal holds 1,000,000 entries | the same process with an empty journal | ≤ 200 MB |
//!
//! # Method (why ratios, rounds and medians)
//! The machines this runs on are shared and virtual: disk and CPU speed
//! drift by several times within a minute. So every figure is a ratio to a
//! baseline measured seconds apart in the same run, in interleaved rounds
//! whose order alternates (ours then raw, raw then ours, ...); the report
//! gives the median of the per-round ratios and their interquartile range
//! ([`Spread`]). P1 and P2 use real processes: a nats-server with JetStream
//! and one `waymark serve` process per agency, started by
//! `waymark_federation`, driven over gRPC.
//!
//! # Invariants
//! - Nothing here changes what is measured to make a figure pass: the
//!   baselines are the raw operations named above, never weakened, and our
//!   side runs with production settings and durability.
//! - Every run writes the command, date, machine and git commit next to the
//!   figures ([`report`]).

#![forbid(unsafe_code)]

pub mod audit;
pub mod e2e;
pub mod journal;
pub mod memory;
pub mod report;

mod raw_js;

use std::time::Duration;

use serde::Serialize;
pub use waymark_federation::AgencyProgram;
pub use waymark_journal::bench::Spread;

/// The figures there are.
pub const ALL: [&str; 5] = ["P1", "P2", "P3", "P4", "P5"];

/// What to run and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Figures to run (`P1`..`P5`).
    pub only: Vec<String>,
    /// A short smoke run: few rounds, small sizes. Figures are not
    /// representative.
    pub quick: bool,
    /// How agency processes are started (`waymark serve`).
    pub program: AgencyProgram,
    /// P2's fixed offered load, events per second.
    pub p2_rate: u32,
    /// P5's journal size.
    pub p5_entries: u64,
}

impl Options {
    /// Every figure, full length.
    pub fn new(program: AgencyProgram) -> Self {
        Self {
            only: ALL.iter().map(|s| (*s).to_owned()).collect(),
            quick: false,
            program,
            p2_rate: 100,
            p5_entries: 1_000_000,
        }
    }

    /// Whether figure `id` is selected.
    pub fn wants(&self, id: &str) -> bool {
        self.only.iter().any(|o| o.eq_ignore_ascii_case(id))
    }

    /// `full` normally, `quick` in a quick run.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// `full` or `quick` seconds.
    pub(crate) fn secs(&self, full: f64, quick: f64) -> Duration {
        Duration::from_secs_f64(self.pick(full, quick))
    }
}

/// The target a figure is held to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Median ratio ours/baseline at least this.
    RatioAtLeast(f64),
    /// Median ratio ours/baseline at most this.
    RatioAtMost(f64),
    /// Our figure (in its unit) at most this.
    OursAtMost(f64),
    /// Context only, no target.
    None,
}

impl Target {
    /// Whether `f` meets it (`None` without a target).
    pub fn met(self, ours: f64, ratio: f64) -> Option<bool> {
        match self {
            Self::RatioAtLeast(t) => Some(ratio >= t),
            Self::RatioAtMost(t) => Some(ratio <= t),
            Self::OursAtMost(t) => Some(ours <= t),
            Self::None => None,
        }
    }

    /// Human form, e.g. `ratio ≥ 0.5`.
    pub fn describe(self) -> String {
        match self {
            Self::RatioAtLeast(t) => format!("ratio ≥ {t}"),
            Self::RatioAtMost(t) => format!("ratio ≤ {t}"),
            Self::OursAtMost(t) => format!("ours ≤ {t}"),
            Self::None => "-".to_owned(),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// `P1`..`P5`.
    pub id: String,
    /// What was measured.
    pub name: String,
    /// Unit of `ours` and `baseline`.
    pub unit: String,
    /// Our figure: median over rounds.
    pub ours: f64,
    /// The baseline: median over rounds.
    pub baseline: f64,
    /// Median of the per-round ratios ours/baseline.
    pub ratio: f64,
    /// First and third quartile of the per-round ratios.
    pub ratio_iqr: [f64; 2],
    /// Rounds measured (after warm-up).
    pub rounds: usize,
    /// How the baseline was measured.
    pub baseline_name: String,
    /// The target.
    pub target: Target,
    /// Whether it was met (`None` without a target).
    pub pass: Option<bool>,
    /// Anything the reader needs to interpret the line.
    pub note: String,
}

impl Figure {
    /// A figure from per-round values of both sides (ratios per round).
    #[allow(clippy::too_many_arguments)]
    pub fn from_rounds(
        id: &str,
        name: impl Into<String>,
        unit: &str,
        ours: &[f64],
        baseline: &[f64],
        baseline_name: impl Into<String>,
        target: Target,
        note: impl Into<String>,
    ) -> Self {
        let ratios: Vec<f64> = ours.iter().zip(baseline).map(|(o, b)| o / b).collect();
        let r = Spread::of(&ratios);
        let o = Spread::of(ours).median;
        Self {
            id: id.to_owned(),
            name: name.into(),
            unit: unit.to_owned(),
            ours: o,
            baseline: Spread::of(baseline).median,
            ratio: r.median,
            ratio_iqr: [r.q1, r.q3],
            rounds: ratios.len(),
            baseline_name: baseline_name.into(),
            target,
            pass: target.met(o, r.median),
            note: note.into(),
        }
    }
}

/// Runs the selected figures in order P1..P5, reporting progress on
/// `progress` (one line per step).
///
/// # Errors
/// The first figure that cannot be measured, named.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Figure>> {
    use anyhow::Context;
    let mut out = Vec::new();
    if opts.wants("P1") || opts.wants("P2") {
        let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        out.extend(
            rt.block_on(e2e::run(opts, progress))
                .context("P1/P2 (end to end)")?,
        );
    }
    if opts.wants("P3") {
        progress("P3: audit verification vs raw verify_strict");
        out.extend(audit::run(opts).context("P3 (audit)")?);
    }
    if opts.wants("P4") {
        progress("P4: durable journal appends vs raw sled + fdatasync");
        out.extend(journal::run(opts).context("P4 (journal appends)")?);
    }
    if opts.wants("P5") {
        let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        out.extend(
            rt.block_on(memory::run(opts, progress))
                .context("P5 (memory)")?,
        );
    }
    Ok(out)
}
