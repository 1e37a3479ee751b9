//! Starting and supervising a local federation: one `nats-server` with
//! JetStream and one process per agency.
//!
//! The server runs with the federation's per-agency users and permissions
//! ([`crate::natsauth`]); the launcher creates the streams as the
//! provisioning user before any agency starts (agencies may not). gRPC is
//! plaintext on loopback unless [`LaunchOptions::grpc_tls`] is set; then
//! every agency requires a client certificate from the federation's CA.
//!
//! # Supervision
//! Every process is watched by its own task. One that exits while the
//! federation is running is restarted (with a growing pause, at most
//! [`MAX_RESTARTS`] times) and reported on stderr with the tail of its log:
//! agencies recover from their journals and outboxes, NATS from its store,
//! so a restart loses nothing. [`Federation::stop`] sends SIGTERM to every
//! agency (they drain and exit 0), waits, then stops NATS.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use waymark_node::NodeConfig;
use waymark_testkit::NatsServer;
use waymark_types::{AgencyId, AgencyKind};

use crate::layout::{Layout, SampleAgency};
use crate::tls::{LocalTls, launcher_channel};

/// Restarts of one process before the supervisor gives up on it.
pub const MAX_RESTARTS: u32 = 5;
/// How long an agency may take to answer its health check after start.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The program that runs an agency: `program args... --kind <kind> --config <file>`.
#[derive(Debug, Clone)]
pub struct AgencyProgram {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before `--kind` (e.g. `serve` for the `waymark` binary).
    pub args: Vec<String>,
}

impl AgencyProgram {
    /// The running `waymark` executable's own `serve` subcommand.
    ///
    /// # Errors
    /// If the path of the running executable is unknown.
    pub fn this_executable() -> anyhow::Result<Self> {
        Ok(Self {
            program: std::env::current_exe().context("locating the running executable")?,
            args: vec!["serve".to_owned()],
        })
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The federation's directory.
    pub dir: PathBuf,
    /// The members.
    pub members: Vec<SampleAgency>,
    /// How agencies are run.
    pub program: AgencyProgram,
    /// `tracing` filter for the agencies' logs.
    pub log_filter: String,
    /// Checkpoint cadence of the journals.
    pub checkpoint_interval: Duration,
    /// OTLP/gRPC endpoint every agency exports its traces to; none (the
    /// default) exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Serve gRPC over TLS with required client certificates (certificates
    /// in `DIR/tls`, made on first use). Default off: plaintext on loopback.
    pub grpc_tls: bool,
}

impl LaunchOptions {
    /// The sample federation in `dir`, run by `program`.
    pub fn sample(dir: &Path, program: AgencyProgram) -> Self {
        Self {
            dir: dir.to_owned(),
            members: crate::SAMPLE.to_vec(),
            program,
            log_filter: "info".to_owned(),
            checkpoint_interval: Duration::from_secs(2),
            otlp_endpoint: None,
            grpc_tls: false,
        }
    }
}

/// One running agency, as a client sees it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id.
    pub id: AgencyId,
    /// Its kind.
    pub kind: AgencyKind,
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its Prometheus endpoint (`http://<metrics>/metrics`).
    pub metrics: SocketAddr,
    /// A connected channel (over TLS with the launcher's client
    /// certificate when the federation serves TLS).
    pub channel: Channel,
    /// Whether it serves TLS.
    pub tls: bool,
}

impl Endpoint {
    /// `http://addr`, or `https://addr` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `http://metrics/metrics`, its Prometheus scrape URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }
}

struct Supervised {
    id: String,
    task: JoinHandle<()>,
    pid: Arc<Mutex<Option<u32>>>,
}

/// A running local federation. Dropping it kills every process; call
/// [`Federation::stop`] for a clean shutdown.
pub struct Federation {
    layout: Layout,
    nats: Arc<Mutex<NatsServer>>,
    nats_url: String,
    endpoints: BTreeMap<String, Endpoint>,
    agencies: Vec<Supervised>,
    stopping: watch::Sender<bool>,
    nats_watch: JoinHandle<()>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("dir", &self.layout.root())
            .field("nats", &self.nats_url)
            .finish_non_exhaustive()
    }
}

/// `n` distinct free loopback ports. Every listener is held until all are
/// chosen: releasing each at once let the kernel hand the same port to two
/// agencies (one then failed to bind, seen in CI).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl Federation {
    /// Makes keys and the manifest on first run, starts NATS and every
    /// agency, and returns once each answers its health check as SERVING.
    ///
    /// # Errors
    /// If a process cannot start or does not become healthy; its log tail is
    /// in the message. Whatever was started is stopped.
    pub async fn start(opts: LaunchOptions) -> anyhow::Result<Self> {
        let layout = Layout::new(&opts.dir);
        let authority = layout.ensure_identity(&opts.members)?;
        // Per-agency broker users: each may publish only under its own
        // sender token and read only its own consumers (natsauth.rs).
        let auth = crate::natsauth::ensure(&layout.nats_seed_files(&opts.members)?)?;
        std::fs::write(layout.nats_auth(), &auth)
            .with_context(|| format!("writing {}", layout.nats_auth().display()))?;
        let store = layout.nats_store();
        let nats = tokio::task::spawn_blocking(move || {
            NatsServer::builder()
                .name("waymark-local")
                .store_dir(store)
                .extra_config(auth)
                .start()
        })
        .await?
        .context("starting nats-server (install it with `bash .ci/install-nats`)")?;
        let nats_url = nats.url();
        let nats = Arc::new(Mutex::new(nats));
        let (stopping, _) = watch::channel(false);
        let nats_watch = tokio::spawn(watch_nats(nats.clone(), stopping.subscribe()));
        let mut fed = Self {
            layout,
            nats,
            nats_url,
            endpoints: BTreeMap::new(),
            agencies: Vec::new(),
            stopping,
            nats_watch,
        };
        if let Some(first) = opts.members.first() {
            crate::natsauth::provision_streams(
                &fed.nats_url,
                &fed.layout.provisioner_seed(),
                &AgencyId::new(first.id)?,
            )
            .await?;
        }
        let authority_hex = hex::encode(authority.public_key().as_bytes());
        let tls = if opts.grpc_tls {
            Some(crate::tls::ensure_local(&fed.layout.tls_dir())?)
        } else {
            None
        };
        let mut ports = free_ports(opts.members.len() * 2)?.into_iter();
        for m in &opts.members {
            let mut port = || {
                ports
                    .next()
                    .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
                    .context("ran out of chosen ports")
            };
            let (addr, metrics) = (port()?, port()?);
            let config =
                fed.write_config(m, (addr, metrics), &opts, &authority_hex, tls.as_ref())?;
            let pid = Arc::new(Mutex::new(None));
            let task = tokio::spawn(supervise(
                m.id.to_owned(),
                command(&opts.program, m.kind, &config),
                fed.layout.log(m.id),
                pid.clone(),
                fed.stopping.subscribe(),
            ));
            fed.agencies.push(Supervised {
                id: m.id.to_owned(),
                task,
                pid,
            });
            let channel = launcher_channel(addr, tls.as_ref())?;
            fed.endpoints.insert(
                m.id.to_owned(),
                Endpoint {
                    id: AgencyId::new(m.id)?,
                    kind: m.kind,
                    addr,
                    metrics,
                    channel,
                    tls: tls.is_some(),
                },
            );
        }
        let mut unhealthy = None;
        for e in fed.endpoints.values() {
            if let Err(err) = wait_healthy(e).await {
                let tail = log_tail(&fed.layout.log(e.id.as_str()));
                unhealthy = Some(format!(
                    "{} did not become healthy: {err:#}\n--- its log ---\n{tail}",
                    e.id
                ));
                break;
            }
        }
        if let Some(why) = unhealthy {
            fed.stop().await.ok();
            bail!(why);
        }
        Ok(fed)
    }

    fn write_config(
        &self,
        m: &SampleAgency,
        (addr, metrics): (SocketAddr, SocketAddr),
        opts: &LaunchOptions,
        authority_hex: &str,
        tls: Option<&LocalTls>,
    ) -> anyhow::Result<PathBuf> {
        let mut c = NodeConfig::with_defaults(
            AgencyId::new(m.id)?,
            m.kind,
            m.country,
            self.layout.journal(m.id),
            self.layout.signing_key(m.id),
        );
        c.grpc.listen = addr;
        c.nats.urls = vec![self.nats_url.clone()];
        c.nats.nkey_seed_file = Some(self.layout.nats_seed(m.id));
        c.keys.encryption_key_file = Some(self.layout.encryption_key(m.id));
        if let Some(t) = tls {
            c.grpc.tls_cert_file = Some(t.server_cert.clone());
            c.grpc.tls_key_file = Some(t.server_key.clone());
            c.grpc.tls_client_ca_file = Some(t.ca_cert.clone());
        }
        c.journal.checkpoint_interval = opts.checkpoint_interval;
        c.journal.checkpoint_every_entries = 200;
        c.telemetry.log_filter.clone_from(&opts.log_filter);
        c.telemetry.metrics_listen = Some(metrics);
        c.telemetry.otlp_endpoint.clone_from(&opts.otlp_endpoint);
        c.shutdown.grace_period = Duration::from_secs(15);
        c.federation.manifest_file = Some(self.layout.manifest());
        c.federation.authority_key = Some(authority_hex.to_owned());
        let text = format!(
            "# Written by the local federation launcher at every start; edit the launcher, not this file.\n{}",
            toml::to_string_pretty(&c)?
        );
        let path = self.layout.node_config(m.id);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The running agencies by id.
    pub fn endpoints(&self) -> &BTreeMap<String, Endpoint> {
        &self.endpoints
    }

    /// The NATS client URL.
    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// The directory layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The process id of agency `id`'s current process, if it is running
    /// (for measurements such as its resident memory).
    pub fn pid(&self, id: &str) -> Option<u32> {
        self.agencies.iter().find(|a| a.id == id).and_then(|a| {
            *a.pid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Stops every agency with SIGTERM (they drain and exit), then NATS.
    ///
    /// # Errors
    /// If an agency does not exit cleanly or NATS does not stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopping.send_replace(true);
        for a in &self.agencies {
            if let Some(pid) = *a
                .pid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                terminate(pid);
            }
        }
        let mut failed = Vec::new();
        for a in std::mem::take(&mut self.agencies) {
            if tokio::time::timeout(Duration::from_secs(30), a.task)
                .await
                .is_err()
            {
                failed.push(a.id);
            }
        }
        self.nats_watch.abort();
        let nats = self.nats.clone();
        tokio::task::spawn_blocking(move || {
            nats.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .stop()
        })
        .await??;
        if !failed.is_empty() {
            bail!("{} did not stop within 30 s", failed.join(", "));
        }
        Ok(())
    }
}

fn command(program: &AgencyProgram, kind: AgencyKind, config: &Path) -> Command {
    let mut c = Command::new(&program.program);
    c.args(&program.args)
        .arg("--kind")
        .arg(kind.as_str())
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        // Own process group: a terminal's Ctrl-C reaches only the launcher,
        // which then stops the agencies in order (SIGTERM, drain, exit).
        .process_group(0)
        .kill_on_drop(true);
    c
}

fn terminate(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
}

/// The last 40 lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    cmd.stdout(out).stderr(err).spawn()
}

async fn supervise(
    id: String,
    mut cmd: Command,
    log: PathBuf,
    pid: Arc<Mutex<Option<u32>>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut restarts = 0;
    loop {
        let mut child = match spawn_logged(&mut cmd, &log) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("waymark: cannot start {id}: {e}");
                return;
            }
        };
        *pid.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = child.id();
        // On stop, the federation signals the child; wait for it to exit.
        let status = loop {
            tokio::select! {
                s = child.wait() => break s,
                changed = stopping.changed() => {
                    if changed.is_err() {
                        break child.wait().await;
                    }
                }
            }
        };
        *pid.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let stop = *stopping.borrow();
        if stop {
            return;
        }
        restarts += 1;
        let shown = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        if restarts > MAX_RESTARTS {
            eprintln!(
                "waymark: {id} exited ({shown}) {MAX_RESTARTS} times; giving up on it. Its log: {}\n{}",
                log.display(),
                log_tail(&log)
            );
            return;
        }
        eprintln!(
            "waymark: {id} exited unexpectedly ({shown}); restarting (attempt {restarts}). Its log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500 * u64::from(restarts))).await;
    }
}

async fn watch_nats(nats: Arc<Mutex<NatsServer>>, stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let stop = *stopping.borrow();
        if stop {
            return;
        }
        let n = nats.clone();
        let exited = tokio::task::spawn_blocking(move || {
            let mut n = n.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if n.exited() {
                Some(n.restart().map_err(|e| e.to_string()))
            } else {
                None
            }
        })
        .await
        .ok()
        .flatten();
        match exited {
            Some(Ok(())) => {
                eprintln!("waymark: nats-server exited unexpectedly; restarted on its store")
            }
            Some(Err(e)) => {
                eprintln!("waymark: nats-server exited and could not be restarted: {e}")
            }
            None => {}
        }
    }
}

async fn wait_healthy(e: &Endpoint) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        let mut h = HealthClient::new(e.channel.clone());
        match h
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(r) => last = format!("health status {}", r.get_ref().status),
            Err(s) => last = s.message().to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no SERVING health answer within {READY_TIMEOUT:?} (last: {last})")
}
