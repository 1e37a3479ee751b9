//! A local Waymark federation on one machine: what `waymark up` and
//! `waymark demo` run, and what the end-to-end tests start.
//!
//! - [`layout`]: where keys, the signed manifest, journals, logs and exports
//!   live under one directory; keys and the manifest are made on first run.
//! - [`launch`]: a supervised `nats-server` with JetStream and one process
//!   per agency of the [`SAMPLE`] federation (every agency kind, two
//!   shelters), each waited for until its health check says SERVING.
//! - [`natsauth`]: the broker's per-agency nkey users and subject
//!   permissions (an agency publishes only under its own sender token and
//!   reads only its own consumers), generated with the seeds.
//! - [`tls`]: certificates for gRPC mutual TLS (a CA, server and client
//!   certificates), for `waymark keys tls` and the tests.
//! - [`serve`]: the agency process itself, for any kind (the `waymark serve`
//!   subcommand; `services/*` hold the same code as one binary per kind).
//! - [`demo`]: the scenario driven over gRPC, its end-state checks at every
//!   agency, and the verified journal exports.
//!
//! # Invariants
//! - Every agency is a separate OS process talking to the others only
//!   through NATS; nothing is shared in memory.
//! - The federation's identity (authority key, agency keys, manifest) is
//!   created once and reused; a directory holding another federation is
//!   refused rather than overwritten.
//! - Stopping sends SIGTERM, so agencies drain and exit 0; dropping the
//!   [`Federation`] kills them (tests that fail still clean up).

#![forbid(unsafe_code)]

pub mod demo;
pub mod launch;
pub mod layout;
pub mod natsauth;
pub mod tls;

use std::process::ExitCode;

use waymark_agency::Recorder;
use waymark_node::{NodeArgs, Services};
use waymark_types::AgencyKind;

pub use launch::{AgencyProgram, Endpoint, Federation, LaunchOptions};
pub use layout::{Layout, SAMPLE, SampleAgency};

/// Flags of an agency process started by the launcher:
/// `--kind <kind>` plus the node's own flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The agency kind to serve: police, shelter, ngo, returndesk or labour.
    #[arg(long, value_parser = parse_kind)]
    pub kind: AgencyKind,
    /// Node flags (`--config` and overrides).
    #[command(flatten)]
    pub node: NodeArgs,
}

fn parse_kind(s: &str) -> Result<AgencyKind, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an agency kind (police, shelter, ngo, returndesk, labour)")
    })
}

/// The agency-specific services of `kind`.
pub fn services_of(kind: AgencyKind) -> fn(Services, Recorder) -> Services {
    match kind {
        AgencyKind::Police => waymark_police::add_to,
        AgencyKind::Shelter => waymark_shelter::add_to,
        AgencyKind::Ngo => waymark_ngo::add_to,
        AgencyKind::ReturnDesk => waymark_returndesk::add_to,
        AgencyKind::Labour => waymark_labour::add_to,
    }
}

/// Runs one agency process of `args.kind` (blocking; builds its own
/// runtime) and returns its exit status.
pub fn serve(args: &ServeArgs) -> ExitCode {
    waymark_agency::process::run_with_args(args.kind, &args.node, services_of(args.kind))
}

/// `main` of a binary whose only job is [`serve`].
pub fn serve_main() -> ExitCode {
    #[derive(Debug, clap::Parser)]
    #[command(about = "A Waymark agency process (any kind)")]
    struct Args {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let args: Args = waymark_node::parse_args();
    serve(&args.serve)
}
