//! `cargo bench -p waymark-journal --features bench`: prints the table of
//! `waymark_journal::bench`.

use std::io::Write;

fn main() {
    let rows = match waymark_journal::bench::run(&waymark_journal::bench::BenchOptions::default()) {
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
