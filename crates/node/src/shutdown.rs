//! The shutdown protocol and the registry of background tasks.
//!
//! Order, driven by [`crate::RunningNode::wait`]:
//! 1. SIGTERM or SIGINT (or [`Shutdown::trigger`], or a failed task) cancels
//!    the [`CancellationToken`]. Background loops watch it and stop taking new
//!    work (the inbox stops pulling, relays stop publishing new batches).
//! 2. Health turns NOT_SERVING; after `shutdown.drain_delay_ms` the listener
//!    closes and in-flight requests drain.
//! 3. Hooks registered with [`Shutdown::on_drained`] run, last registered
//!    first (for example: sign a final checkpoint, then close the journal).
//! 4. Tracked tasks ([`Shutdown::spawn`]) are awaited.
//!
//! Steps 2 to 4 share one grace period; whatever still runs after it is
//! abandoned and reported by name, so a stuck task never blocks exit forever.
//!
//! Invariants: every background task is spawned through [`Shutdown::spawn`],
//! so it has a name, runs inside a `task` span and is awaited on exit; a task
//! that returns an error or panics triggers shutdown, because a node whose
//! journal or bus task died must not keep answering as if it were healthy.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Boxed error of a task or hook.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

type Hook = (
    String,
    Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
);

/// The shutdown signal plus the registry of background tasks. Cheap to clone;
/// every clone shares the same token and registry.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    running: BTreeMap<u64, String>,
    hooks: Vec<Hook>,
    failure: Option<ShutdownError>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("running", &self.running)
            .field(
                "hooks",
                &self.hooks.iter().map(|h| &h.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A step of the shutdown protocol failed.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Installing the SIGTERM / SIGINT handlers failed.
    #[error("installing the signal handlers failed")]
    Signals(#[source] std::io::Error),
    /// A tracked task returned an error (which triggered shutdown).
    #[error("background task {task:?} failed")]
    TaskFailed {
        /// The task's name.
        task: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// A tracked task panicked (which triggered shutdown).
    #[error("background task {task:?} panicked")]
    TaskPanicked {
        /// The task's name.
        task: String,
    },
    /// A shutdown hook returned an error; later hooks still ran.
    #[error("shutdown hook {hook:?} failed")]
    HookFailed {
        /// The hook's name.
        hook: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// The grace period ran out; these hooks and tasks were abandoned.
    #[error("grace period of {grace:?} ran out; abandoned: {}", .abandoned.join(", "))]
    GraceExpired {
        /// The configured grace period.
        grace: Duration,
        /// Names of the hooks and tasks still running.
        abandoned: Vec<String>,
    },
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token cancelled when shutdown starts. Background loops select on
    /// `token.cancelled()` and stop taking new work.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Starts shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown starts.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Triggers shutdown on SIGTERM or SIGINT (Ctrl-C). Call once per process,
    /// inside the runtime; tests usually call [`Shutdown::trigger`] instead.
    ///
    /// # Errors
    /// [`ShutdownError::Signals`] when a handler cannot be installed.
    pub fn trigger_on_signals(&self) -> Result<(), ShutdownError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).map_err(ShutdownError::Signals)?;
            let mut int = signal(SignalKind::interrupt()).map_err(ShutdownError::Signals)?;
            let token = self.token.clone();
            self.spawn("signals", async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                    () = token.cancelled() => return Ok::<_, BoxError>(()),
                };
                tracing::info!(signal = name, "shutdown requested");
                token.cancel();
                Ok(())
            });
        }
        #[cfg(not(unix))]
        {
            let token = self.token.clone();
            self.spawn("signals", async move {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r.map_err(ShutdownError::Signals)?,
                    () = token.cancelled() => return Ok::<_, BoxError>(()),
                }
                tracing::info!(signal = "ctrl-c", "shutdown requested");
                token.cancel();
                Ok(())
            });
        }
        Ok(())
    }

    /// Spawns a named background task, tracked and instrumented with a
    /// `task` span. The task should finish soon after [`Shutdown::token`] is
    /// cancelled. If it returns an error or panics, the failure is logged and
    /// recorded and shutdown is triggered.
    pub fn spawn<F, E>(&self, name: impl Into<String>, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let name = name.into();
        let guard = {
            let mut reg = self.lock();
            let id = reg.next_id;
            reg.next_id += 1;
            reg.running.insert(id, name.clone());
            TaskGuard {
                id,
                name: name.clone(),
                shutdown: self.clone(),
            }
        };
        let span = tracing::info_span!("task", task = %name);
        self.tracker.spawn(
            async move {
                let result = task.await;
                if let Err(e) = result {
                    let e: BoxError = e.into();
                    tracing::error!(error = %e, "background task failed; shutting down");
                    guard.shutdown.fail(ShutdownError::TaskFailed {
                        task: guard.name.clone(),
                        source: e,
                    });
                }
                drop(guard);
            }
            .instrument(span),
        )
    }

    /// Registers a hook that runs after the gRPC server has drained, before
    /// tracked tasks are awaited. Hooks run one at a time, last registered
    /// first, within the grace period.
    pub fn on_drained<F, E>(&self, name: impl Into<String>, hook: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let hook = async move { hook.await.map_err(Into::into) };
        self.lock().hooks.push((name.into(), Box::pin(hook)));
    }

    /// Names of the tracked tasks still running.
    pub fn running_tasks(&self) -> Vec<String> {
        self.lock().running.values().cloned().collect()
    }

    /// Steps 3 and 4 of the protocol: runs the hooks, then waits for tracked
    /// tasks, all before `deadline`. Triggers shutdown first if needed.
    /// `abandoned` lists what earlier steps already gave up on; once anything
    /// is abandoned, the remaining hooks are skipped (the deadline has passed).
    ///
    /// # Errors
    /// The first task failure recorded during the node's life, else the first
    /// hook failure, else [`ShutdownError::GraceExpired`].
    pub(crate) async fn finish(
        &self,
        deadline: Instant,
        grace: Duration,
        mut abandoned: Vec<String>,
    ) -> Result<(), ShutdownError> {
        self.trigger();
        let mut hook_error = None;
        let hooks = std::mem::take(&mut self.lock().hooks);
        for (name, hook) in hooks.into_iter().rev() {
            if !abandoned.is_empty() {
                abandoned.push(format!("hook {name}"));
                continue;
            }
            let span = tracing::info_span!("shutdown_hook", hook = %name);
            match tokio::time::timeout_at(deadline, hook.instrument(span)).await {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    tracing::error!(hook = %name, error = %source, "shutdown hook failed");
                    hook_error.get_or_insert(ShutdownError::HookFailed { hook: name, source });
                }
                Err(_) => abandoned.push(format!("hook {name}")),
            }
        }
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            abandoned.extend(
                self.running_tasks()
                    .into_iter()
                    .map(|t| format!("task {t}")),
            );
        }
        if let Some(failure) = self.lock().failure.take() {
            return Err(failure);
        }
        if let Some(e) = hook_error {
            return Err(e);
        }
        if abandoned.is_empty() {
            Ok(())
        } else {
            tracing::warn!(?abandoned, "grace period ran out");
            Err(ShutdownError::GraceExpired { grace, abandoned })
        }
    }

    fn fail(&self, error: ShutdownError) {
        self.lock().failure.get_or_insert(error);
        self.trigger();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry stays consistent even if a holder panicked: every
        // critical section is a single map or vector operation.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a task from the registry when it ends, and reports a panic.
struct TaskGuard {
    id: u64,
    name: String,
    shutdown: Shutdown,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.shutdown.lock().running.remove(&self.id);
        if std::thread::panicking() {
            tracing::error!(task = %self.name, "background task panicked; shutting down");
            self.shutdown.fail(ShutdownError::TaskPanicked {
                task: self.name.clone(),
            });
        }
    }
}
