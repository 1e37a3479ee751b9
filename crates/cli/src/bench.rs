//! `waymark bench`: the figures P1–P5 of `waymark_bench`, each next to its
//! raw baseline measured in the same run; writes the Markdown report to
//! `--out` (default `BENCHMARKS.md`) and prints it, or prints JSON with
//! `--json`. Run it from a release build:
//! `cargo run --release -p waymark-cli -- bench`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use waymark_bench::{ALL, AgencyProgram, Options, report};

/// `waymark bench`
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Print the figures as JSON (`[{name, ours, baseline, ratio, ...}]`)
    /// instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Where to write the Markdown report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// A short smoke run (few rounds, small sizes); figures not representative.
    #[arg(long)]
    quick: bool,
    /// Only these figures, comma separated (e.g. `P1,P4`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// P2's fixed offered load, events per second.
    #[arg(long, default_value_t = 100)]
    p2_rate: u32,
    /// Journal entries for P5.
    #[arg(long, default_value_t = 1_000_000)]
    p5_entries: u64,
}

/// Runs the benchmarks. Exit 0 when every selected figure ran (targets
/// missed are reported, not errors).
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut opts = Options::new(AgencyProgram::this_executable()?);
    opts.quick = args.quick;
    opts.p2_rate = args.p2_rate;
    opts.p5_entries = args.p5_entries;
    if !args.only.is_empty() {
        for o in &args.only {
            if !ALL.iter().any(|a| a.eq_ignore_ascii_case(o.trim())) {
                bail!("--only {o}: not a figure (P1, P2, P3, P4, P5)");
            }
        }
        opts.only = args.only.iter().map(|s| s.trim().to_uppercase()).collect();
    }
    if cfg!(debug_assertions) {
        eprintln!("waymark bench: warning: a debug build; use `cargo run --release`");
    }
    let command = std::iter::once("waymark".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let header = report::Header::now(command, args.quick);
    let figures = waymark_bench::run(&opts, &mut |step| eprintln!("waymark bench: {step}"))?;
    let md = report::markdown(&header, &figures);
    std::fs::write(&args.out, &md).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("waymark bench: wrote {}", args.out.display());
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report::json(&figures)?)?;
    } else {
        write!(out, "{md}")?;
    }
    Ok(ExitCode::SUCCESS)
}
