//! `waymark nats provision`: creates the two JetStream streams as the
//! stream provisioner user of `waymark keys nats`, on a deployed broker
//! whose agencies may not create streams (the provisioning step in
//! `deploy/compose.yaml` and `deploy/k8s/base/nats/provision.yaml`).
//! `waymark up` does the same itself. Idempotent: existing streams with the
//! expected subjects and storage are accepted as they are.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use waymark_federation::natsauth::{self, ProvisionTarget};

/// `waymark nats ...`
#[derive(Debug, Subcommand)]
pub(crate) enum NatsCommand {
    /// Create (or verify) the streams WAYMARK_EVENTS and WAYMARK_CHECKPOINTS
    /// as the stream provisioner, retrying until the broker accepts or
    /// --wait runs out. Exit 0 once both exist as the agencies expect them.
    Provision(ProvisionArgs),
}

/// `waymark nats provision`
#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// A server URL (repeatable; any node of the cluster).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// The provisioner's nkey seed (`waymark-provisioner.nk` of `waymark keys nats`).
    #[arg(long)]
    nkey_seed_file: PathBuf,
    /// CA of the servers' certificates: connect over TLS only.
    #[arg(long)]
    tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one; with --tls-key-file.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Client private key (PEM); with --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Copies of each stream: the agencies' `nats.stream_replicas` (3 on a
    /// three-node cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    stream_replicas: u8,
    /// Seconds to keep retrying while the broker is unreachable or its
    /// JetStream cluster is still forming.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

/// Runs a `nats` subcommand.
pub(crate) fn run(cmd: NatsCommand) -> anyhow::Result<ExitCode> {
    let NatsCommand::Provision(args) = cmd;
    let target = ProvisionTarget {
        urls: args.urls,
        seed_file: args.nkey_seed_file,
        tls_ca_file: args.tls_ca_file,
        tls_client: args.tls_cert_file.zip(args.tls_key_file),
        stream_replicas: usize::from(args.stream_replicas),
    };
    // A seed that cannot be read will not become readable by waiting.
    natsauth::load_seed(&target.seed_file)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    loop {
        match runtime.block_on(natsauth::provision(&target)) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waymark nats provision: {e:#}; retrying");
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
    writeln!(
        std::io::stdout().lock(),
        "streams provisioned; replicas per stream: {}",
        target.stream_replicas
    )?;
    Ok(ExitCode::SUCCESS)
}
