//! `waymark import htcds FILE --endpoint URL`: cases from a CSV in the
//! layout of IOM's Human Trafficking Case Data Standard into an agency over
//! gRPC (the mapping is documented in `waymark_client::htcds`). Thin: parse
//! flags, call the library, print each rejected row and the summary, choose
//! the exit code (0 every row imported or already present, 1 a row was
//! rejected, 2 bad flags, 64 a file that is not usable as a whole (not CSV,
//! no `cas_Id` column), 69 the agency is not reachable, 74 the file cannot
//! be read).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use waymark_client::htcds::{self, ImportError, ImportOptions};
use waymark_client::proto::v1::IdentificationChannel;
use waymark_client::{Client, ConnectOptions, TlsFiles};

/// `waymark import`
#[derive(Debug, Args)]
#[command(
    about = "Import cases into an agency over gRPC from another system's data",
    long_about = None
)]
pub(crate) struct ImportArgs {
    #[command(subcommand)]
    command: ImportCommand,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Cases from a CSV in HTCDS layout (one case per row, `cas_Id` as the
    /// stable record id). Re-running imports nothing twice.
    Htcds(HtcdsArgs),
}

#[derive(Debug, Args)]
struct HtcdsArgs {
    /// The CSV file.
    file: PathBuf,
    /// The agency's gRPC address, e.g. http://127.0.0.1:50051 (as printed
    /// by `waymark up`).
    #[arg(long)]
    endpoint: String,
    /// Names the source system in idempotency keys (keep it the same
    /// across runs of one source).
    #[arg(long, default_value = "htcds")]
    source: String,
    /// Channel of rows that give none: police, border, labour-inspection,
    /// outreach, hotline, self-referral, consular, social-services.
    #[arg(long, value_parser = parse_channel)]
    default_channel: Option<IdentificationChannel>,
    /// CA certificate (PEM) for TLS to the agency.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "tls_key", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds to wait for the agency to answer one call.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

fn parse_channel(s: &str) -> Result<IdentificationChannel, String> {
    let name = format!(
        "IDENTIFICATION_CHANNEL_{}",
        s.replace('-', "_").to_uppercase()
    );
    IdentificationChannel::from_str_name(&name)
        .filter(|c| *c != IdentificationChannel::Unspecified)
        .ok_or_else(|| format!("{s:?} is not a channel"))
}

/// Runs `waymark import`.
pub(crate) fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImportCommand::Htcds(a) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(htcds_import(a))
        }
    }
}

async fn htcds_import(a: HtcdsArgs) -> anyhow::Result<ExitCode> {
    let opts = ConnectOptions {
        request_timeout: Duration::from_secs(a.timeout),
        tls: a.tls_ca.map(|ca_file| TlsFiles {
            ca_file,
            client_cert_file: a.tls_cert,
            client_key_file: a.tls_key,
            domain: None,
        }),
        ..ConnectOptions::default()
    };
    let client = match Client::connect(&a.endpoint, opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("waymark: error: {:#}", anyhow::Error::from(e));
            return Ok(ExitCode::from(69));
        }
    };
    let import = ImportOptions {
        source: a.source,
        default_channel: a.default_channel,
    };
    let report = match htcds::import_file(&client, &a.file, &import).await {
        Ok(r) => r,
        Err(e) => {
            let code = if matches!(e, ImportError::Read { .. }) {
                74
            } else {
                64
            };
            eprintln!("waymark: error: {:#}", anyhow::Error::from(e));
            return Ok(ExitCode::from(code));
        }
    };
    if !report.ignored_columns.is_empty() {
        eprintln!(
            "waymark: note: columns not imported: {}",
            report.ignored_columns.join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(if report.rejected() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
