//! The process shell around [`crate::run`]: what a service's `main` calls.
//!
//! Exit codes: 0 after a clean shutdown, [`EXIT_CONFIG`] (64, `EX_USAGE`)
//! for bad flags or configuration (reported before anything is bound), 1 for
//! any failure after start-up.

use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;

use crate::config::{ConfigError, NodeArgs, NodeConfig, load};
use crate::shutdown::{BoxError, Shutdown, ShutdownError};
use crate::telemetry::{self, TelemetryError};

/// Exit status for bad flags or configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Exit status for a failure after the configuration was accepted.
pub const EXIT_FAILURE: u8 = 1;

/// A node process failed; [`exit_code_for`] maps it to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Loading the configuration failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Building the Tokio runtime failed.
    #[error("building the async runtime failed")]
    Runtime(#[source] std::io::Error),
    /// Setting up logs, traces or metrics failed.
    #[error("setting up telemetry failed")]
    Telemetry(#[source] TelemetryError),
    /// Installing the signal handlers failed.
    #[error("installing signal handlers failed")]
    Signals(#[source] ShutdownError),
    /// The service itself failed.
    #[error("the service failed")]
    Service(#[source] BoxError),
}

/// The exit status for `error`: [`EXIT_CONFIG`] for configuration errors,
/// else [`EXIT_FAILURE`].
pub fn exit_code_for(error: &NodeError) -> u8 {
    match error {
        NodeError::Config(_) => EXIT_CONFIG,
        _ => EXIT_FAILURE,
    }
}

/// Parses the service's flags; a usage error prints clap's message and exits
/// with [`EXIT_CONFIG`] (clap alone would use 2). `--help` and `--version`
/// exit 0.
pub fn parse_args<A: clap::Parser>() -> A {
    A::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() {
            i32::from(EXIT_CONFIG)
        } else {
            0
        })
    })
}

/// Runs a node process: loads the configuration (exit 64 on problems, before
/// anything is bound), handles `--check-config`, builds the runtime, starts
/// telemetry, wires SIGTERM / SIGINT to a [`Shutdown`], and awaits `app`.
///
/// `app` typically opens the journal, builds [`crate::Services`], then calls
/// [`crate::run`] and [`crate::RunningNode::wait`].
pub fn main_with<F, Fut, E>(args: &NodeArgs, app: F) -> ExitCode
where
    F: FnOnce(NodeConfig, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    main_with_checks(
        args,
        |_| Ok(()),
        |config, (), shutdown| app(config, shutdown),
    )
}

/// [`main_with`] with a service's own start-up checks: `check` runs right
/// after the configuration loads, before `--check-config` answers and before
/// anything is bound, and what it prepares (keys, manifests read from disk)
/// is handed to `app`. Its problems exit with [`EXIT_CONFIG`] like any other
/// configuration error.
pub fn main_with_checks<T, C, F, Fut, E>(args: &NodeArgs, check: C, app: F) -> ExitCode
where
    C: FnOnce(&NodeConfig) -> Result<T, ConfigError>,
    F: FnOnce(NodeConfig, T, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    match try_main(args, check, app) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = exit_code_for(&error);
            tracing::error!(error = %chain(&error), "exiting with status {code}");
            let _ = writeln!(std::io::stderr(), "error: {}", chain(&error));
            ExitCode::from(code)
        }
    }
}

fn try_main<T, C, F, Fut, E>(args: &NodeArgs, check: C, app: F) -> Result<(), NodeError>
where
    C: FnOnce(&NodeConfig) -> Result<T, ConfigError>,
    F: FnOnce(NodeConfig, T, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let config = load(args)?;
    let prepared = check(&config)?;
    if args.check_config {
        let text = toml::to_string_pretty(&config).unwrap_or_else(|e| format!("# {e}\n"));
        let _ = write!(std::io::stdout(), "# configuration is valid\n{text}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("waymark")
        .build()
        .map_err(NodeError::Runtime)?;
    runtime.block_on(async move {
        let telemetry =
            telemetry::init(&config.telemetry, &config.agency).map_err(NodeError::Telemetry)?;
        tracing::info!(
            agency = %config.agency.id,
            kind = %config.agency.kind,
            version = env!("CARGO_PKG_VERSION"),
            "starting"
        );
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals().map_err(NodeError::Signals)?;
        let result = app(config, prepared, shutdown)
            .await
            .map_err(|e| NodeError::Service(e.into()));
        telemetry.shutdown();
        result
    })
}

/// `error: cause: cause ...` on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
