//! `cargo bench -p waymark-audit --features bench`: audited events/s next to
//! raw single-signature Ed25519 `verify_strict` on one core, measured in
//! alternating rounds of the same run, and memory per event on long cases
//! (see `waymark_audit::bench`). `WAYMARK_BENCH_CASES` (default 1000) and
//! `WAYMARK_BENCH_ROUNDS` (default 15) change the size.

#![allow(clippy::print_stdout)]

use waymark_audit::bench::{MEMORY_CHILD, Plan, memory_child, run};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // This binary run again by the memory measurement: one audit, one line.
    if let Ok(services) = std::env::var(MEMORY_CHILD) {
        match services.parse().map_err(Into::into).and_then(memory_child) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("memory child failed: {e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    let plan = Plan {
        cases: env("WAYMARK_BENCH_CASES", 1000),
        rounds: env("WAYMARK_BENCH_ROUNDS", 15),
    };
    match run(plan) {
        Ok(table) => println!("{table}"),
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
