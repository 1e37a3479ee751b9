//! `waymark up`: the sample federation for integrators. Starts a supervised
//! `nats-server` and one process per agency (keys and a signed manifest are
//! made on the first run), prints every agency's gRPC endpoint (health and
//! reflection are on, so `grpcurl -plaintext ADDR list` works), and runs
//! until Ctrl-C, which stops every process cleanly. The broker always runs
//! with per-agency users and permissions; `--tls` also puts gRPC behind
//! TLS with required client certificates.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use waymark_federation::{AgencyProgram, Federation, LaunchOptions};

/// `waymark up`
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where keys, journals and logs live; reused across runs.
    #[arg(long, default_value = ".waymark/up")]
    data_dir: PathBuf,
    /// `tracing` filter for the agencies' logs (in DATA_DIR/logs).
    #[arg(long, default_value = "info")]
    log_filter: String,
    /// Serve gRPC over TLS and require client certificates issued by the
    /// federation's CA (made on first use in DATA_DIR/tls; issue one for a
    /// back-office system with `waymark keys tls client --ca DATA_DIR/tls`).
    #[arg(long)]
    tls: bool,
}

/// Runs the federation until Ctrl-C or SIGTERM.
pub(crate) fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut opts = LaunchOptions::sample(&args.data_dir, AgencyProgram::this_executable()?);
        opts.log_filter = args.log_filter;
        opts.grpc_tls = args.tls;
        let fed = Federation::start(opts).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "waymark up: federation in {}", args.data_dir.display())?;
            writeln!(out, "  nats-server          {}", fed.nats_url())?;
            for e in fed.endpoints().values() {
                writeln!(
                    out,
                    "  {:<20} {:<10} {:<24} metrics {}",
                    e.id.as_str(),
                    e.kind.as_str(),
                    e.url(),
                    e.metrics_url()
                )?;
            }
            if args.tls {
                writeln!(
                    out,
                    "gRPC TLS: client certificates required; CA {}",
                    fed.layout().tls_dir().join("ca.crt").display()
                )?;
            }
            writeln!(
                out,
                "nats:     per-agency users, {}\nmanifest: {}\nlogs:     {}\nCtrl-C stops everything.",
                fed.layout().nats_auth().display(),
                fed.layout().manifest().display(),
                fed.layout().root().join("logs").display()
            )?;
            out.flush()?;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        eprintln!("waymark up: stopping");
        fed.stop().await?;
        Ok(ExitCode::SUCCESS)
    })
}
