//! `cargo bench -p waymark-journal --features bench`: prints the table of
//! `waymark_journal::bench` (method and baselines in that module's docs,
//! recorded results in `crates/journal/BENCH.md`).
//!
//! Environment knobs (all optional): `WAYMARK_BENCH_APPENDERS` (comma
//! separated concurrency levels, default `1,4,16`), `WAYMARK_BENCH_ROUNDS`
//! (interleaved rounds per append row, default 16), `WAYMARK_BENCH_ROUND_MS`
//! (how long each side runs in a round, default 750),
//! `WAYMARK_BENCH_VERIFY_ENTRIES` (default 20000), `WAYMARK_BENCH_VERIFY_ROUNDS`
//! (default 8).

use std::io::Write;
use std::time::Duration;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn main() {
    let mut opts = waymark_journal::bench::BenchOptions::default();
    if let Ok(v) = std::env::var("WAYMARK_BENCH_APPENDERS") {
        opts.appenders = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Some(n) = env("WAYMARK_BENCH_ROUNDS") {
        opts.rounds = n;
    }
    if let Some(ms) = env("WAYMARK_BENCH_ROUND_MS") {
        opts.round = Duration::from_millis(ms);
    }
    if let Some(n) = env("WAYMARK_BENCH_VERIFY_ENTRIES") {
        opts.verify_entries = n;
    }
    if let Some(n) = env("WAYMARK_BENCH_VERIFY_ROUNDS") {
        opts.verify_rounds = n;
    }
    let _ = writeln!(
        std::io::stdout(),
        "waymark-journal bench: {} interleaved rounds per append row, each side {} ms per \
         round, order reversed every other round; {} verification rounds.\n\
         ratio = ours/baseline within a round: median, interquartile range, min-max; \
         rates are medians over rounds; batch = entries per fsync (ours, and the \
         baselines at the same batch).\n",
        opts.rounds,
        opts.round.as_millis(),
        opts.verify_rounds,
    );
    let rows = match waymark_journal::bench::run(&opts) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "benchmark failed: {e}");
            std::process::exit(1);
        }
    };
    let _ = write!(
        std::io::stdout(),
        "{}",
        waymark_journal::bench::table(&rows)
    );
}
