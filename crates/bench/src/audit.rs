//! P3: audit verification events/s next to raw Ed25519 `verify_strict` on
//! one core, by calling the audit crate's own interleaved measurement
//! ([`waymark_audit::bench::throughput`], documented in
//! `crates/audit/BENCH.md`): a synthetic federation (police and two
//! shelters, cosigned checkpoints) audited with `audit_dir` in alternating
//! rounds with the baseline.
//!
//! The figure is the default audit (one verification thread per core)
//! against the one-core baseline, as the issue states it; the one-thread
//! row is reported next to it for context.

use anyhow::anyhow;
use waymark_audit::bench::{Plan, throughput};

use crate::{Figure, Options, Target};

/// The target: audit ≥ 1.5 × raw single-core verification.
pub const TARGET: f64 = 1.5;

/// Runs P3.
///
/// # Errors
/// If the synthetic federation cannot be built or does not audit clean.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let plan = Plan {
        cases: opts.pick(1000, 200),
        rounds: opts.pick(15, 3),
    };
    let tp = throughput(plan).map_err(|e| anyhow!("audit bench: {e}"))?;
    let note = format!(
        "{} cases, {} event entries in 3 journals",
        tp.cases, tp.events
    );
    let mut out = Vec::new();
    for row in tp.rows.iter().rev() {
        let default = row.threads == tp.cores;
        out.push(Figure::from_rounds(
            "P3",
            format!(
                "audit verification, {} verify thread(s){}",
                row.threads,
                if default { " (default)" } else { "" }
            ),
            "events/s",
            &row.audit,
            &row.baseline,
            "Ed25519 verify_strict, one core",
            if default {
                Target::RatioAtLeast(TARGET)
            } else {
                Target::None
            },
            note.clone(),
        ));
        if tp.cores == 1 {
            break;
        }
    }
    Ok(out)
}
