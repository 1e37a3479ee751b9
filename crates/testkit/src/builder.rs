//! [`NatsServerBuilder`]: the options of a test server and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ClusterConfig, JetStreamConfig, ServerConfig};
use crate::{NatsServer, Result, TestDir};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for a [`NatsServer`]; see each method for its default.
#[derive(Debug, Clone)]
#[must_use = "call .start() to run the server"]
pub struct NatsServerBuilder {
    jetstream: bool,
    store_dir: Option<PathBuf>,
    sync_always: bool,
    client_port: Option<u16>,
    monitor_port: Option<u16>,
    name: String,
    extra_config: Option<String>,
    ready_timeout: Duration,
    binary: Option<PathBuf>,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        Self {
            jetstream: true,
            store_dir: None,
            sync_always: true,
            client_port: None,
            monitor_port: None,
            name: "waymark-test".to_owned(),
            extra_config: None,
            ready_timeout: READY_TIMEOUT,
            binary: None,
        }
    }
}

impl NatsServerBuilder {
    /// JetStream on or off. Default: on.
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// JetStream store directory. Default: `store/` in the server's own temp dir.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// `sync_interval: always` (fsync before every ack). Default: on, as a
    /// chain-of-custody system must run; turn off only for baseline benchmarks.
    pub fn sync_always(mut self, on: bool) -> Self {
        self.sync_always = on;
        self
    }

    /// Fixed client port. Default: a free port chosen by the server.
    pub fn client_port(mut self, port: u16) -> Self {
        self.client_port = Some(port);
        self
    }

    /// Fixed monitoring (HTTP) port. Default: a free port chosen by the server.
    pub fn monitor_port(mut self, port: u16) -> Self {
        self.monitor_port = Some(port);
        self
    }

    /// Server name. Default: `waymark-test`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Raw config text appended after the generated settings.
    pub fn extra_config(mut self, text: impl Into<String>) -> Self {
        self.extra_config = Some(text.into());
        self
    }

    /// How long to wait for readiness. Default: 30 s.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Binary to run. Default: [`crate::nats_server_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the server and waits until it is ready.
    ///
    /// # Errors
    /// [`Error::NotFound`] without a usable binary; [`Error::Io`] or
    /// [`Error::Spawn`] when the process cannot be set up; [`Error::Exited`] or
    /// [`Error::NotReady`] (with the log tail) when it does not come up.
    pub fn start(self) -> Result<NatsServer> {
        let mut server = self.prepare(None)?;
        server.spawn()?;
        server.await_ready()?;
        Ok(server)
    }

    /// Creates the guard and its directory without starting the process.
    pub(crate) fn prepare(self, cluster: Option<ClusterConfig>) -> Result<NatsServer> {
        let binary = match self.binary {
            Some(path) => path,
            None => crate::nats_server_binary()?,
        };
        let dir = TestDir::new("nats")?;
        let store_dir = self.store_dir.unwrap_or_else(|| dir.path().join("store"));
        let config = ServerConfig {
            name: self.name,
            client_port: self.client_port,
            monitor_port: self.monitor_port,
            ports_file_dir: dir.path().join("ports"),
            jetstream: self.jetstream.then(|| JetStreamConfig {
                store_dir: store_dir.clone(),
                sync_always: self.sync_always,
            }),
            cluster,
            extra: self.extra_config,
        };
        Ok(NatsServer::unstarted(
            binary,
            config,
            self.ready_timeout,
            store_dir,
            dir,
        ))
    }
}
