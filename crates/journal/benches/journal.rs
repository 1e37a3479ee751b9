//! `cargo bench -p waymark-journal --features bench`: prints the table of
//! `waymark_journal::bench`.
//!
//! Environment knobs (all optional): `WAYMARK_BENCH_APPENDERS` (comma
//! separated concurrency levels, default `1,4,16`), `WAYMARK_BENCH_SECS`
//! (seconds per append measurement, default 3).

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut opts = waymark_journal::bench::BenchOptions::default();
    if let Ok(v) = std::env::var("WAYMARK_BENCH_APPENDERS") {
        opts.appenders = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if let Some(secs) = std::env::var("WAYMARK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        opts.duration = Duration::from_secs_f64(secs);
    }
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
