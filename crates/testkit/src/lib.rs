//! Waymark's test harness: every integration test runs against a real
//! `nats-server` (STYLE.md §8), never a mock.
//!
//! * [`NatsServer`]: a guard around one server process on a free loopback
//!   port, with its own store directory, JetStream and `sync_interval: always`
//!   by default, ready only once `/healthz` says so; `kill` (crash), `stop`
//!   (graceful) and `restart` (same port, same store) for failure tests.
//!   [`NatsCluster`] starts several routed nodes.
//! * [`find_nats_server`]: `$WAYMARK_NATS_SERVER`, then a recent enough
//!   `nats-server` on `PATH`, then the pinned `<repo>/.tools/bin/nats-server`;
//!   otherwise an error that names `bash .ci/install-nats`.
//! * [`TestDir`]: a temp dir that is kept (and its path printed) when the
//!   test fails, or always with `WAYMARK_KEEP_TEST_DIRS=1`.
//! * [`wait_for`] / [`wait_for_sync`]: the only place tests may sleep.
//!
//! Invariants: a server process never outlives its guard (killed and reaped
//! on drop, failed start or `kill`); nothing listens outside 127.0.0.1; no
//! readiness decision relies on a fixed delay; every failure to start carries
//! the tail of the server log. (A test process that is itself SIGKILLed cannot
//! run destructors: its servers are then left running.)

#![forbid(unsafe_code)]

mod binary;
mod builder;
mod cluster;
mod config;
mod dir;
mod error;
mod probe;
mod server;
mod wait;

use std::time::Duration;

pub use binary::{
    ENV_NATS_SERVER, FoundBinary, MIN_VERSION, SearchInputs, Version, find_nats_server,
    install_script, nats_server_binary, workspace_root,
};
pub use builder::NatsServerBuilder;
pub use cluster::NatsCluster;
pub use dir::{ENV_KEEP_TEST_DIRS, TestDir};
pub use error::{Error, Result};
pub use server::NatsServer;
pub use wait::{wait_for, wait_for_sync};

/// Connects a client to `server` and returns it with a JetStream context.
///
/// The client reconnects quickly (50 ms steps, at most 500 ms apart), so a
/// test that restarts the server does not wait on the default backoff.
///
/// # Errors
/// [`Error::Connect`] when the server does not accept the connection.
pub async fn connect(
    server: &NatsServer,
) -> Result<(async_nats::Client, async_nats::jetstream::Context)> {
    connect_urls(vec![server.url()]).await
}

/// Like [`connect`], to any of `urls` (e.g. [`NatsCluster::urls`]).
///
/// # Errors
/// [`Error::Connect`] when no server accepts the connection.
pub async fn connect_urls(
    urls: Vec<String>,
) -> Result<(async_nats::Client, async_nats::jetstream::Context)> {
    let client = async_nats::ConnectOptions::new()
        .name("waymark-testkit")
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            let steps = u64::try_from(attempts).unwrap_or(u64::MAX);
            Duration::from_millis(steps.saturating_mul(50).min(500))
        })
        .connect(urls.clone())
        .await
        .map_err(|source| Error::Connect {
            url: urls.join(","),
            source,
        })?;
    let jetstream = async_nats::jetstream::new(client.clone());
    Ok((client, jetstream))
}
