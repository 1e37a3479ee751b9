//! `cargo bench -p waymark-audit --features bench`: audited events/s next to
//! raw single-signature Ed25519 `verify_strict` on one core, measured in the
//! same run (see `waymark_audit::bench`).

#![allow(clippy::print_stdout)]

fn main() {
    let cases = std::env::var("WAYMARK_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    match waymark_audit::bench::run(cases) {
        Ok(table) => println!("{table}"),
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
