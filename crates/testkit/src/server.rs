//! [`NatsServer`]: one real `nats-server` process per test.
//!
//! Lifecycle: the builder renders a config file into the server's own
//! [`TestDir`] and spawns the binary with `-c`, stdout and stderr appended to
//! `nats-server.log` in that dir. Ports: unless the test fixed them, the server
//! binds port `-1` (the kernel picks a free one, so there is no
//! pick-then-bind race) and, once every listener is up, writes them to
//! `ports/<exe>_<pid>.ports`, which the harness reads. Readiness: the harness
//! polls `GET /healthz` on the monitor port until it answers 200 (with
//! JetStream on this also means JetStream is enabled and, after a restart, has
//! recovered its streams). Never a fixed sleep; a timeout kills the process and
//! reports the last log lines. The learnt ports are then written into the
//! config, so [`NatsServer::restart`] comes back on the same ports and store.
//!
//! Start, stop and restart block the calling thread (no async runtime is
//! needed); calling them from a `#[tokio::test]` is fine, as that thread has
//! nothing else to do until the server is up.
//!
//! Invariants: at most one process per guard; every process the guard spawns
//! is reaped (no zombies) by `kill`, `stop`, a failed start or `Drop`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::config::{HOST, ServerConfig};
use crate::probe::{http_get, log_tail, read_ports_file};
use crate::wait::Backoff;
use crate::{Error, NatsServerBuilder, Result, TestDir};

const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_FILE: &str = "nats-server.log";

/// A running `nats-server`, killed and reaped on drop (see module docs).
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    config: ServerConfig,
    ready_timeout: Duration,
    child: Option<Child>,
    client_port: u16,
    monitor_port: u16,
    store_dir: PathBuf,
    log_path: PathBuf,
    /// Log length when the current process started: its tail starts here.
    log_offset: u64,
    dir: TestDir,
}

impl NatsServer {
    /// A guard whose process is not started yet (see [`NatsServerBuilder`]).
    pub(crate) fn unstarted(
        binary: PathBuf,
        config: ServerConfig,
        ready_timeout: Duration,
        store_dir: PathBuf,
        dir: TestDir,
    ) -> Self {
        Self {
            binary,
            config,
            ready_timeout,
            child: None,
            client_port: 0,
            monitor_port: 0,
            store_dir,
            log_path: dir.path().join(LOG_FILE),
            log_offset: 0,
            dir,
        }
    }

    /// A builder with the defaults: JetStream, fsync always, random ports.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// Starts a server with the defaults.
    ///
    /// # Errors
    /// As [`NatsServerBuilder::start`].
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Server name (`server_name` in its config).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Client URL, `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://{HOST}:{}", self.client_port)
    }

    /// Client port (stable across restarts).
    #[must_use]
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Monitoring port (stable across restarts).
    #[must_use]
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// JetStream store directory (stable across restarts).
    #[must_use]
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's own directory: config, log, ports file, default store.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file that receives the server's stdout and stderr.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Process id, or `None` after [`kill`](Self::kill) or [`stop`](Self::stop).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET <path>` on the monitoring port, parsed as JSON, e.g. `/jsz` or `/varz`.
    ///
    /// # Errors
    /// [`Error::Monitor`] if the request fails, the status is not 200 or the
    /// body is not JSON.
    pub fn monitor_json(&self, path: &str) -> Result<serde_json::Value> {
        let fail = |reason| Error::Monitor {
            path: path.to_owned(),
            reason,
        };
        let body = http_get(self.monitor_port, path).map_err(fail)?;
        serde_json::from_str(&body).map_err(|e| fail(e.to_string()))
    }

    /// The last lines the current (or last) process logged.
    #[must_use]
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, self.log_offset)
    }

    /// Whether the server process has exited on its own (crashed or was
    /// killed from outside), reaping it if so; `false` while it runs and
    /// after [`kill`](Self::kill) or [`stop`](Self::stop). For supervisors.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_)) | Err(_)) => {
                self.child = None;
                true
            }
            _ => false,
        }
    }

    /// Kills the server with SIGKILL (a crash: nothing is flushed) and reaps it.
    /// Does nothing if it is not running.
    ///
    /// # Errors
    /// [`Error::Process`] if the signal or the wait fails.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let process = |source| Error::Process { pid, source };
        if child.try_wait().map_err(process)?.is_none() {
            child.kill().map_err(process)?;
            child.wait().map_err(process)?;
        }
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    /// Does nothing if it is not running.
    ///
    /// # Errors
    /// [`Error::StopTimeout`] if it ignores SIGTERM (it is then killed);
    /// [`Error::Process`] if signalling or waiting fails.
    pub fn stop(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        let process = |source| Error::Process { pid, source };
        // An exited child stays a zombie until reaped, so `pid` cannot have
        // been reused by another process when we signal it.
        if child.try_wait().map_err(process)?.is_none() {
            let target = rustix::process::Pid::from_child(child);
            rustix::process::kill_process(target, rustix::process::Signal::TERM)
                .map_err(|e| process(e.into()))?;
            let mut backoff = Backoff::new(STOP_TIMEOUT);
            while child.try_wait().map_err(process)?.is_none() {
                let Some(delay) = backoff.after_failure() else {
                    self.kill()?;
                    return Err(Error::StopTimeout {
                        pid,
                        timeout: STOP_TIMEOUT,
                    });
                };
                std::thread::sleep(delay);
            }
        }
        self.child = None;
        Ok(())
    }

    /// Starts the server again on the same store dir and ports, stopping it
    /// gracefully first if it is running, and waits until it is ready: clients
    /// reconnect and JetStream recovers what was durable.
    ///
    /// If the old port was taken meanwhile (the server exits with "address
    /// already in use"), retries until the ready timeout.
    ///
    /// # Errors
    /// As [`NatsServer::stop`] and [`NatsServerBuilder::start`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let mut backoff = Backoff::new(self.ready_timeout);
        loop {
            self.spawn()?;
            match self.await_ready() {
                Err(error) if is_port_clash(&error) => match backoff.after_failure() {
                    Some(delay) => std::thread::sleep(delay),
                    None => return Err(error),
                },
                other => return other,
            }
        }
    }

    /// Writes the config and spawns the process (without waiting), after
    /// killing any process this guard still runs (one process per guard).
    pub(crate) fn spawn(&mut self) -> Result<()> {
        self.kill()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let config_path = self.dir.path().join("nats.conf");
        std::fs::write(&config_path, self.config.render()).map_err(io(&config_path))?;
        let ports = &self.config.ports_file_dir;
        if ports.exists() {
            std::fs::remove_dir_all(ports).map_err(io(ports))?;
        }
        std::fs::create_dir_all(ports).map_err(io(ports))?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io(&self.log_path))?;
        self.log_offset = log.metadata().map_err(io(&self.log_path))?.len();
        writeln!(
            log,
            "# waymark-testkit: {} -c {}",
            self.binary.display(),
            config_path.display()
        )
        .map_err(io(&self.log_path))?;
        let stderr = log.try_clone().map_err(io(&self.log_path))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls until the process has reported its ports and `/healthz` is 200.
    /// On failure the process is killed and reaped.
    pub(crate) fn await_ready(&mut self) -> Result<()> {
        let mut backoff = Backoff::new(self.ready_timeout);
        loop {
            let child = self.child.as_mut().ok_or(Error::NotRunning)?;
            let pid = child.id();
            if let Some(status) = child
                .try_wait()
                .map_err(|source| Error::Process { pid, source })?
            {
                self.child = None;
                return Err(Error::Exited {
                    status,
                    log: self.log_path.clone(),
                    tail: self.log_tail(),
                });
            }
            let reason = match self.check_ready(pid) {
                Ok(()) => {
                    self.config.client_port = Some(self.client_port);
                    self.config.monitor_port = Some(self.monitor_port);
                    return Ok(());
                }
                Err(reason) => reason,
            };
            if let Some(delay) = backoff.after_failure() {
                std::thread::sleep(delay);
                continue;
            }
            self.kill()?;
            return Err(Error::NotReady {
                timeout: self.ready_timeout,
                reason,
                log: self.log_path.clone(),
                tail: self.log_tail(),
            });
        }
    }

    /// One readiness check: the ports file of `pid`, then `/healthz`.
    fn check_ready(&mut self, pid: u32) -> std::result::Result<(), String> {
        let ports = read_ports_file(&self.config.ports_file_dir, pid)?;
        self.client_port = ports.client;
        self.monitor_port = ports.monitor;
        http_get(ports.monitor, "/healthz").map(drop)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("waymark-testkit: could not kill nats-server: {error}");
        }
    }
}

/// Whether a start failed because a fixed port was taken by another socket.
pub(crate) fn is_port_clash(error: &Error) -> bool {
    matches!(error, Error::Exited { tail, .. } if tail.contains("address already in use"))
}
