//! P4: durable journal appends/s with 1, 4 and 16 concurrent appenders next
//! to a raw sled loop (insert B values, `flush`, `fdatasync`) at the batch
//! size B our group commit reached, in interleaved rounds. This is the
//! journal crate's own measurement ([`waymark_journal::bench`], also run by
//! `cargo bench -p waymark-journal --features bench`; method and history in
//! `crates/journal/BENCH.md`), so the two never disagree about method.
//!
//! The bare-log rows (one thread writing the same log bytes per batch and
//! `fdatasync`ing them) are context without a target: what any design that
//! makes a log durable per batch pays at least.

use waymark_journal::bench::{BenchOptions, append_rows};

use crate::{Figure, Options, Target};

/// The target: ours ≥ 0.7 × the raw loop.
pub const TARGET: f64 = waymark_journal::bench::APPEND_TARGET;

/// Runs P4.
///
/// # Errors
/// If a scratch journal or a baseline fails.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let bo = BenchOptions {
        appenders: vec![1, 4, 16],
        rounds: opts.pick(16, 3),
        round: opts.secs(0.75, 0.25),
        ..BenchOptions::default()
    };
    let mut out = Vec::new();
    for r in append_rows(&bo)? {
        let target = match r.target {
            Some(t) => Target::RatioAtLeast(t),
            None => Target::None,
        };
        let batch = r.batch.unwrap_or(1.0);
        out.push(crate::Figure {
            id: "P4".to_owned(),
            name: r.name.clone(),
            unit: "appends/s".to_owned(),
            ours: r.ours,
            baseline: r.baseline,
            ratio: r.ratio.median,
            ratio_iqr: [r.ratio.q1, r.ratio.q3],
            rounds: r.rounds,
            baseline_name: r.baseline_name.clone(),
            target,
            pass: target.met(r.ours, r.ratio.median),
            note: format!("batch {batch:.1} entries per fsync"),
        });
    }
    Ok(out)
}
