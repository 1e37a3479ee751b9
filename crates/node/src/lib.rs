//! The runtime shared by Waymark's five agency services: the only crate that
//! knows about processes.
//!
//! - [`config`]: one [`NodeConfig`], layered defaults → TOML file →
//!   `WAYMARK_<SECTION>__<KEY>` environment → flags ([`NodeArgs`]), with every
//!   problem reported at once, named by layer and key.
//! - [`run`]: binds the gRPC server with the agency's [`Services`] plus
//!   health and reflection, request size and concurrency limits, a tracing
//!   span per request; returns a [`RunningNode`] (real bound address, so
//!   tests start it on port 0).
//! - [`Shutdown`]: the cancellation token and the registry of named,
//!   instrumented background tasks that the journal and bus plug into.
//! - [`tls`]: gRPC over TLS with a required client certificate when
//!   `grpc.tls_cert_file`, `grpc.tls_key_file` and `grpc.tls_client_ca_file`
//!   are set (all three or none).
//! - [`telemetry`]: logs, optional OTLP traces, optional Prometheus metrics
//!   (gRPC requests by method and code from `rpc_metrics`).
//! - [`main_with`]: the process shell a service's `main` calls (exit 64 for
//!   bad configuration, before anything is bound).
//!
//! A service binary is a thin `main`:
//!
//! ```no_run
//! use clap::Parser;
//! use waymark_node::{NodeArgs, RunError, Services};
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     node: NodeArgs,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let args: Args = waymark_node::parse_args();
//!     waymark_node::main_with(&args.node, |config, shutdown| async move {
//!         // Open the journal, connect the bus (tasks via `shutdown.spawn`),
//!         // then add the agency's services.
//!         let services = Services::new();
//!         let node = waymark_node::run(&config, services, shutdown).await?;
//!         node.wait().await?;
//!         Ok::<_, RunError>(())
//!     })
//! }
//! ```
//!
//! Invariants: configuration is fully validated before any socket is bound;
//! health is SERVING only between start and the beginning of shutdown; every
//! background task is named, tracked and awaited within the grace period.

#![forbid(unsafe_code)]

mod admission;
pub mod config;
mod node;
mod process;
mod rpc_metrics;
mod server;
mod shutdown;
pub mod telemetry;
pub mod tls;

pub use config::{ConfigError, NodeArgs, NodeConfig, load};
pub use node::{RunError, RunningNode, run};
pub use process::{
    EXIT_CONFIG, EXIT_FAILURE, NodeError, exit_code_for, main_with, main_with_checks, parse_args,
};
pub use server::{MaxRequestSize, Services};
pub use shutdown::{BoxError, Shutdown, ShutdownError};
