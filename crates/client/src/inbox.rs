//! Following an agency's inbox across restarts and broken connections.
//!
//! # Cursor file
//! One small text file per followed agency holds the cursor of the last
//! item the back office finished processing: its decimal value and a
//! newline. It is replaced atomically: the new value is written to
//! `<file>.tmp` in the same directory, fsynced, renamed over the file, and
//! the directory fsynced, so after a crash the file holds either the old or
//! the new cursor, never a torn one. A missing file means "from the
//! beginning" (cursor 0); an unreadable or corrupt one is an error, never
//! silently treated as 0 (that would replay the whole inbox).
//!
//! # Delivery
//! At least once, in journal order, nothing skipped: [`InboxFollower::next`]
//! first commits the previous item (it was processed, since the caller asked
//! for the next one), then returns the next item after the committed
//! cursor. After a crash between processing an item and the next call, that
//! one item comes again; make its handling idempotent (e.g. by its event
//! id). Items at or before the committed cursor are never returned.

use std::io::Write;
use std::path::{Path, PathBuf};

use tonic::Streaming;
use waymark_proto::v1 as pb;

use crate::{Client, Error, RetryPolicy};

/// Reading or writing the cursor file failed.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The file could not be read or written.
    #[error("{action} the inbox cursor file {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a cursor.
    #[error("the inbox cursor file {} is corrupt: {content:?} is not a cursor", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (truncated).
        content: String,
    },
}

/// Following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The cursor could not be kept.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The agency refused the subscription (not a transient failure).
    #[error("the agency refused the inbox subscription")]
    Refused(#[source] Error),
}

/// The durable cursor: see the module docs for the file format.
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// The cursor file at `path` (not read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored cursor, 0 when the file does not exist.
    ///
    /// # Errors
    /// The file exists but cannot be read or does not hold a cursor.
    pub fn load(&self) -> Result<u64, CursorError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(CursorError::Io {
                    action: "reading",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        text.trim().parse().map_err(|_| CursorError::Corrupt {
            path: self.path.clone(),
            content: text.chars().take(40).collect(),
        })
    }

    /// Replaces the stored cursor atomically and durably.
    ///
    /// # Errors
    /// Any I/O failure; the previous cursor is then still in place.
    pub fn store(&self, cursor: u64) -> Result<(), CursorError> {
        let io = |action| {
            let path = self.path.clone();
            move |source| CursorError::Io {
                action,
                path,
                source,
            }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp).map_err(io("creating a temporary file for"))?;
        writeln!(f, "{cursor}").map_err(io("writing"))?;
        f.sync_all().map_err(io("syncing"))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io("replacing"))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the directory of"))?;
        Ok(())
    }
}

/// A resumable follower of one agency's inbox (`InboxService.Subscribe`).
///
/// ```no_run
/// # async fn f(client: waymark_client::Client) -> Result<(), waymark_client::FollowError> {
/// let mut inbox = waymark_client::InboxFollower::open(client, "police-inbox.cursor")?;
/// loop {
///     let item = inbox.next().await?;
///     // handle item.event ...; the cursor is committed on the next call
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct InboxFollower {
    client: Client,
    file: CursorFile,
    committed: u64,
    delivered: u64,
    include_quarantined: bool,
    reconnect: RetryPolicy,
    stream: Option<Streaming<pb::SubscribeResponse>>,
    failures: u32,
}

impl InboxFollower {
    /// A follower that resumes after the cursor stored at `cursor_file`
    /// (from the beginning when there is none).
    ///
    /// # Errors
    /// The cursor file exists but cannot be read or is corrupt.
    pub fn open(client: Client, cursor_file: impl Into<PathBuf>) -> Result<Self, CursorError> {
        let file = CursorFile::new(cursor_file);
        let committed = file.load()?;
        Ok(Self {
            client,
            file,
            committed,
            delivered: committed,
            include_quarantined: false,
            reconnect: RetryPolicy {
                max_attempts: u32::MAX,
                ..RetryPolicy::default()
            },
            stream: None,
            failures: 0,
        })
    }

    /// Also deliver quarantined input (for operators).
    #[must_use]
    pub fn include_quarantined(mut self, yes: bool) -> Self {
        self.include_quarantined = yes;
        self
    }

    /// The pauses between reconnections (`max_attempts` counts failures in
    /// a row before [`InboxFollower::next`] gives up; default: never).
    #[must_use]
    pub fn reconnect_policy(mut self, policy: RetryPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// The cursor stored in the file.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Stores the cursor of the last item returned, marking it processed.
    /// [`InboxFollower::next`] does this itself; call it before stopping.
    ///
    /// # Errors
    /// The cursor file cannot be written.
    pub async fn commit(&mut self) -> Result<(), CursorError> {
        if self.delivered == self.committed {
            return Ok(());
        }
        let file = self.file.clone();
        let cursor = self.delivered;
        tokio::task::spawn_blocking(move || file.store(cursor))
            .await
            .map_err(|e| CursorError::Io {
                action: "writing",
                path: self.file.path.clone(),
                source: std::io::Error::other(e),
            })??;
        self.committed = cursor;
        Ok(())
    }

    /// Commits the previous item, then waits for the next one, reconnecting
    /// (with backoff) when the stream breaks or the agency restarts.
    ///
    /// # Errors
    /// The cursor cannot be stored, the agency refuses the subscription
    /// (a non-transient error), or reconnecting failed more often in a row
    /// than the reconnect policy allows.
    pub async fn next(&mut self) -> Result<pb::SubscribeResponse, FollowError> {
        self.commit().await?;
        loop {
            if self.stream.is_none() {
                let req = pb::SubscribeRequest {
                    after_cursor: self.committed,
                    include_quarantined: self.include_quarantined,
                };
                match self.client.inbox().subscribe(req).await {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        self.failed(e).await?;
                        continue;
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let failure = match stream.message().await {
                Ok(Some(item)) if item.cursor <= self.delivered => continue,
                Ok(Some(item)) => {
                    self.failures = 0;
                    self.delivered = item.cursor;
                    return Ok(item);
                }
                // The agency ended the stream (it is shutting down).
                Ok(None) => Error::Unavailable {
                    message: "the agency ended the inbox stream".into(),
                },
                Err(status) => Error::from_status(&status),
            };
            self.stream = None;
            self.failed(failure).await?;
        }
    }

    async fn failed(&mut self, e: Error) -> Result<(), FollowError> {
        self.failures += 1;
        // A broken stream may surface as CANCELLED or UNKNOWN; only a clear
        // refusal stops following.
        let final_refusal = matches!(
            e,
            Error::InvalidArgument { .. }
                | Error::FailedPrecondition { .. }
                | Error::PermissionDenied { .. }
                | Error::NotFound { .. }
        ) || matches!(
            e,
            Error::Other {
                code: tonic::Code::Unimplemented | tonic::Code::Unauthenticated,
                ..
            }
        );
        if final_refusal || self.failures >= self.reconnect.max_attempts {
            return Err(FollowError::Refused(e));
        }
        let pause = self.reconnect.backoff(self.failures, Some(&e));
        tracing::warn!(error = %e, ?pause, cursor = self.committed, "inbox stream broke; reconnecting");
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_file_round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let f = CursorFile::new(dir.path().join("c"));
        assert_eq!(f.load().unwrap(), 0, "missing file: from the beginning");
        f.store(42).unwrap();
        assert_eq!(f.load().unwrap(), 42);
        f.store(43).unwrap();
        assert_eq!(f.load().unwrap(), 43);
        assert!(!dir.path().join("c.tmp").exists());
        std::fs::write(f.path(), "forty-four\n").unwrap();
        assert!(matches!(f.load(), Err(CursorError::Corrupt { .. })));
    }
}
