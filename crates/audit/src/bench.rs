//! Measurements for `cargo bench -p waymark-audit --features bench`:
//! audited events/s over a synthetic federation ([`crate::synth`]), next to
//! raw single-signature Ed25519 `verify_strict` on one core, measured in
//! the same run.
//!
//! "Events" are event entries (ORIGINATED and RECEIVED) in all journals:
//! each carries one signature the audit verifies, so the ratio compares
//! like with like. The audit also hashes, decodes, links and replays every
//! one of them through the policy core.

use std::fmt::Write;
use std::time::Instant;

use waymark_crypto::{AgencyKey, pae};
use waymark_proto::PAYLOAD_TYPE_EVENT;

use crate::{AuditOptions, audit_dir, synth};

/// Builds a federation of `cases` cases, audits it with one verification
/// thread and with one per core, measures raw `verify_strict`, and returns
/// the table.
///
/// # Errors
/// I/O errors, or an audit that is not clean (the synthetic federation
/// must audit clean).
pub fn run(cases: usize) -> Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let events = synth::write(dir.path(), cases)?;
    let built = t.elapsed();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for threads in [1, cores] {
        let opts = AuditOptions {
            threads,
            ..AuditOptions::default()
        };
        let t = Instant::now();
        let report = audit_dir(dir.path(), &opts)?;
        let secs = t.elapsed().as_secs_f64();
        if !report.clean || !report.findings.is_empty() {
            return Err(format!(
                "synthetic federation not clean: {:?}",
                report.findings.first()
            )
            .into());
        }
        rows.push((
            format!("audit, {threads} verify thread(s)"),
            events as f64 / secs,
            secs,
        ));
    }
    // Raw baseline: one key, messages shaped like our event PAEs.
    let key = AgencyKey::generate();
    let public = key.public_key();
    let n = 20_000usize;
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| pae(PAYLOAD_TYPE_EVENT, format!("{i:0>300}").as_bytes()))
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| key.sign(m)).collect();
    let t = Instant::now();
    let mut ok = 0usize;
    for (m, s) in msgs.iter().zip(&sigs) {
        ok += usize::from(public.verify_strict(m, s).is_ok());
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();
    if ok != n {
        return Err("baseline signatures failed".into());
    }
    let mut out = String::new();
    writeln!(
        out,
        "waymark-audit bench: {cases} cases, {events} event entries in 3 journals (built in {:.1} s), {cores} core(s)",
        built.as_secs_f64()
    )?;
    writeln!(
        out,
        "| measurement | per second | ratio to raw verify_strict (1 core) | wall time |"
    )?;
    writeln!(out, "|---|---:|---:|---:|")?;
    writeln!(
        out,
        "| raw Ed25519 verify_strict, 1 core | {raw:.0} sig/s | 1.00 | |"
    )?;
    for (name, rate, secs) in rows {
        writeln!(
            out,
            "| {name} | {rate:.0} events/s | {:.2} | {secs:.2} s |",
            rate / raw
        )?;
    }
    Ok(out)
}
