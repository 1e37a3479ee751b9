//! Journals read from live agencies: `waymark.v1.JournalService.ExportJournal`
//! streams the same bytes as an export file; they are spooled to a file and
//! audited exactly as one.
//!
//! # Why spool
//! Every phase of the audit reads a journal more than once (the verifier
//! and the analysis concurrently, a second analysis if some journal fails,
//! the witness check's roots at witnessed sizes, the location of a failure).
//! A live journal grows, and each export carries a new header time and
//! trailer signature, so two calls never return the same bytes. Spooling one
//! export per agency to disk gives every phase the same snapshot and keeps
//! memory independent of the journal's size. Disk use equals the export's
//! size, as for a file audit. The spool is a private temporary directory
//! removed after the audit, unless the caller asked to keep the exports
//! ([`crate::AuditOptions::save_exports`]), in which case `waymark audit` on
//! that directory later reproduces the audit from the very same bytes.
//!
//! # Trust
//! An endpoint is trusted for nothing beyond what an export file is: its
//! bytes are verified exactly as a file's, and its agency's keys are the
//! ones its own export header lists, as on the file path (the header is the
//! agency's claim; other agencies' cosignatures and the cross-journal checks
//! are what hold it to it). The auditor calls no other RPC, so nothing an
//! agency says outside its signed export counts. The URL is not evidence of
//! identity either: the journal is attributed to the agency its header
//! names, and two exports of one agency are reported
//! (`journal.duplicate_agency`) whichever way they arrived. The transport is
//! plain `http://` gRPC (agencies serve loopback or an operator's private
//! network today); it needs no confidentiality for integrity, since every
//! record is signed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tonic::transport::Endpoint;
use waymark_proto::v1::ExportJournalRequest;
use waymark_proto::v1::journal_service_client::JournalServiceClient;

use waymark_types::Timestamp;

use crate::AuditError;
use crate::finding::{Finding, Location, Severity, rules};

/// How long connecting to an agency may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the export stream may stay silent (the agency writes it as it
/// reads its journal, so a long silence is a stalled agency).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest chunk accepted (agencies send 64 KiB).
const MAX_CHUNK: usize = 16 << 20;

/// One endpoint's export, spooled.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The endpoint's URL as given.
    pub(crate) url: String,
    /// The spool file.
    pub(crate) path: PathBuf,
    /// When the auditor asked for it and when it had it all (its own
    /// clock, ms): the export's `exported_at` must fall in between.
    pub(crate) window: (i64, i64),
}

/// Fetches the export of every endpoint in `urls` into `dir` (one file
/// each, `endpoint-<i>.wmj`), all at once, counting bytes into `counter`.
///
/// Runs its own Tokio runtime on a thread of its own, so it may be called
/// from synchronous code and from inside another runtime alike.
///
/// # Errors
/// [`AuditError::Endpoint`] naming the first endpoint that could not be
/// read completely, and the step that failed.
pub(crate) fn fetch_all(
    urls: &[String],
    dir: &Path,
    counter: Option<Arc<AtomicU64>>,
) -> Result<Vec<Fetched>, AuditError> {
    let jobs: Vec<Fetched> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| Fetched {
            url: url.clone(),
            path: dir.join(format!("endpoint-{i}.wmj")),
            window: (0, 0),
        })
        .collect();
    let plan: Vec<(String, PathBuf)> = jobs
        .iter()
        .map(|j| (j.url.clone(), j.path.clone()))
        .collect();
    let results = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AuditError::Endpoint {
                url: String::new(),
                step: "starting the gRPC client runtime",
                source: Box::new(e),
            })?;
        rt.block_on(async move {
            let tasks: Vec<_> = plan
                .into_iter()
                .map(|(url, path)| {
                    let counter = counter.clone();
                    tokio::spawn(async move { fetch_one(&url, &path, counter).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.map_err(|e| AuditError::Endpoint {
                    url: String::new(),
                    step: "running the fetch task",
                    source: Box::new(e),
                })?);
            }
            Ok::<_, AuditError>(out)
        })
    })
    .join()
    .unwrap_or_else(|_| {
        Err(AuditError::Endpoint {
            url: String::new(),
            step: "running the fetch thread",
            source: "the fetch thread panicked".into(),
        })
    })?;
    let windows = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(jobs
        .into_iter()
        .zip(windows)
        .map(|(j, window)| Fetched { window, ..j })
        .collect())
}

/// Streams `url`'s export into `path`; returns when it was asked for and
/// when it was complete (ms).
async fn fetch_one(
    url: &str,
    path: &Path,
    counter: Option<Arc<AtomicU64>>,
) -> Result<(i64, i64), AuditError> {
    let fail = |step: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| AuditError::Endpoint {
            url: url.to_owned(),
            step,
            source: e,
        }
    };
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| fail("parsing the URL")(Box::new(e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| fail("connecting")(Box::new(e)))?;
    let asked = Timestamp::now().millis();
    let mut stream = JournalServiceClient::new(channel)
        .max_decoding_message_size(MAX_CHUNK + 64)
        .export_journal(ExportJournalRequest { from_seq: 0 })
        .await
        .map_err(|e| fail("calling JournalService.ExportJournal")(Box::new(e)))?
        .into_inner();
    let file = File::create(path).map_err(|e| AuditError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, stream.message())
            .await
            .map_err(|e| fail("waiting for the next chunk")(Box::new(e)))?
            .map_err(|e| fail("reading the export stream")(Box::new(e)))?;
        let Some(m) = next else { break };
        out.write_all(&m.chunk).map_err(|e| AuditError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        if let Some(c) = &counter {
            c.fetch_add(m.chunk.len() as u64, Ordering::Relaxed);
        }
    }
    out.flush().map_err(|e| AuditError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    Ok((asked, Timestamp::now().millis()))
}

/// The finding for an export whose header time is not when it was read.
pub(crate) fn export_time_finding(
    agency: &str,
    url: &str,
    exported_at: Option<i64>,
    (asked, done): (i64, i64),
) -> Option<Finding> {
    let tol = crate::BACKDATE_TOLERANCE_MS;
    let fresh = exported_at.is_some_and(|t| t >= asked - tol && t <= done + tol);
    (!fresh).then(|| {
        let when = exported_at.map_or("no time".to_owned(), |t| {
            Timestamp::from_millis(t).to_string()
        });
        Finding::new(
            Severity::Error,
            rules::ENDPOINT_EXPORT_TIME,
            Location::journal(agency),
            format!(
                "{url} served an export dated {when}, but it was asked for at {} and read by {}: \
                 a stale or backdated export, or a clock off by more than {} s",
                Timestamp::from_millis(asked),
                Timestamp::from_millis(done),
                tol / 1000
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_dated_when_it_was_read_is_fresh() {
        let w = (1_000_000, 1_002_000);
        assert!(export_time_finding("a", "http://x", Some(1_001_000), w).is_none());
        // Within the clock tolerance on either side.
        assert!(export_time_finding("a", "http://x", Some(1_000_000 - 59_000), w).is_none());
        assert!(export_time_finding("a", "http://x", Some(1_002_000 + 59_000), w).is_none());
    }

    #[test]
    fn a_stale_or_undated_export_is_reported() {
        let w = (10_000_000, 10_002_000);
        for at in [Some(10_000_000 - 61_000), Some(10_002_000 + 61_000), None] {
            let f = export_time_finding("bg-police-sofia", "http://x", at, w).unwrap();
            assert_eq!(f.rule, rules::ENDPOINT_EXPORT_TIME);
            assert_eq!(f.severity, Severity::Error);
            assert_eq!(f.location.agency, "bg-police-sofia");
        }
    }

    #[test]
    fn an_unreachable_endpoint_names_the_step() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        match fetch_all(std::slice::from_ref(&url), dir.path(), None) {
            Err(AuditError::Endpoint { url: u, step, .. }) => {
                assert_eq!(u, url);
                assert_eq!(step, "connecting");
            }
            other => panic!("{other:?}"),
        }
    }
}
