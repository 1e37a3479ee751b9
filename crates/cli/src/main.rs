//! `waymark`: the one command-line tool of the project.
//!
//! Subcommands: `up` (the local sample federation), `demo` (the README's
//! main job), `audit` (verify exported journals), `export` (FHIR R5 and
//! Kantara consent receipts), `import` (HTCDS CSV into an agency), `keys` (agency signing
//! keys), `nats provision` (the streams on a deployed broker), `bench` (the benchmark figures P1–P5), and `serve` (one agency process, what `up` starts). `main` only
//! parses flags and maps errors to exit codes; each subcommand lives in its
//! own module.
//!
//! Exit codes follow sysexits: 0 success, 1 a finding or failure of the work
//! itself, 64 bad usage or configuration, 74 an I/O error.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod demo;
mod export;
mod import;
mod keys;
mod nats;
mod up;

/// jemalloc instead of glibc's malloc: an agency process is long-lived and
/// many-threaded (tokio workers, blocking pool, sled's threads), and glibc's
/// per-thread arenas kept freed memory resident (P5 in `BENCHMARKS.md`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Waymark: a verifiable referral, consent and custody bus for the agencies of
/// a national referral mechanism for victims of trafficking.
#[derive(Debug, Parser)]
#[command(name = "waymark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the sample federation (nats-server and one process per agency),
    /// drive the demo cases through it over gRPC, check them, and export and
    /// verify every journal.
    Demo(demo::DemoArgs),
    /// Export a case for existing tooling: FHIR R5 bundles, Kantara consent receipts.
    Export(export::ExportArgs),
    /// Import cases into an agency over gRPC (`import htcds FILE --endpoint URL`).
    Import(import::ImportArgs),
    /// Start the sample federation and keep it running until Ctrl-C.
    Up(up::UpArgs),
    /// Run one agency process (what `up` starts for each agency).
    Serve(waymark_federation::ServeArgs),
    /// Verify every journal export (*.wmj) in a directory: integrity,
    /// witnesses, two-party links and policy replay; custody timelines.
    Audit(audit::AuditArgs),
    /// Measure the figures P1–P5 next to raw baselines (release build) and
    /// write BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Generate and inspect agency signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Broker operations on a deployed cluster (`nats provision`: create the
    /// streams as the stream provisioner before the agencies need them).
    #[command(subcommand)]
    Nats(nats::NatsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(args) => audit::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Nats(cmd) => nats::run(cmd),
        Command::Up(args) => up::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::Serve(args) => return waymark_federation::serve(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("waymark: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
