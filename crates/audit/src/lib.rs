//! Audit of a federation's journals, from export files or read live from
//! the agencies.
//!
//! Purpose: let an auditor, inspector or court answer, from the journals
//! alone and without trusting any agency or the broker, "who had custody of
//! this person when, on what consent or legal basis did their data move,
//! and was anything altered?".
//!
//! [`audit_dir`] verifies every `*.wmj` export in a directory; [`audit`]
//! takes any mix of directories and live agencies' gRPC endpoints
//! ([`Source`]). An endpoint's `JournalService.ExportJournal` stream is the
//! export file's bytes: it is spooled to a file and audited exactly as one
//! (same checks, same findings, same report), see [`endpoint`] for why and
//! for the trust model. Then, over all journals together:
//! 1. **Integrity** of each journal with the journal crate's streaming
//!    verifier (chain, Merkle checkpoints, batch-verified signatures with
//!    the keys valid at each record's time, signed trailer), several
//!    journals in parallel. A journal that fails is reported
//!    (`journal.*`, critical) and left out of the cross-journal checks.
//! 2. **Witnesses** ([`witness`](crate::witness)): checkpoints cosigned or
//!    journaled as witnessed by other agencies must match the signer's
//!    export (`witness.rewritten`); two roots for one size anywhere are an
//!    equivocation (`witness.equivocation`).
//! 3. **Two-party links**: answers and receipts match a sender event by id
//!    and envelope hash; every disclosure is received and receipted
//!    (`link.*`).
//! 4. **Policy replay** in the auditor's merged view with `waymark-policy`,
//!    each event under the rule set it names (`policy.<code>`), plus
//!    `consent.backdated` and `withdrawal.outstanding`.
//!
//! The analysis streams all exports at once, merged by the entries'
//! `recorded_at`, and runs concurrently with the verification threads; if
//! a journal fails verification the analysis is redone without it.
//!
//! # Keys (trust model)
//! Each agency's keys are the ones its own export header lists, whether the
//! export is a file or read from its endpoint; the auditor asks an agency
//! for nothing else. The header is the agency's own claim: what holds it to
//! it is that every other agency's journal and cosignatures were verified
//! with *their* header keys and must agree with it (witnesses, links,
//! `journal.signer_mismatch`). With the federation's signed manifest
//! ([`AuditOptions::manifest`]) the keys are pinned to it instead: header
//! keys must be the manifest's, valid no longer than it says, and other
//! agencies' signatures are checked with the manifest's windows
//! (`manifest.*` findings; see `manifest.rs`).
//!
//! # Snapshots
//! Journals are read one snapshot per agency (fetched concurrently from
//! endpoints). Checkpoints signed, and cosignatures made, after the snapshot
//! that should hold them are not held against it (see
//! [`witness`](crate::witness)); other evidence created between two
//! agencies' snapshots (an event and its receipt) can show as `link.*`
//! findings in a busy federation. Audit live federations when they are
//! quiet, or audit again: a finding caused by the moment disappears, one
//! caused by tampering stays.
//!
//! # Memory model
//! Measured by `memory::tests::long_cases_cost_a_small_record_per_event`
//! and in `BENCH.md`: on four cases with 8 000 and 160 000 events the peak
//! resident set grows by about 95 B per added event (669 B per event before
//! the policy core stopped keeping whole events).
//! - Verification: constant per journal (the verifier's frontier and a
//!   64-signature batch), several journals at a time.
//! - Endpoints: nothing in memory; each export is spooled to disk (its size,
//!   as a file audit needs).
//! - Witness checks: O(checkpoints × witnesses), never per entry.
//! - Links: one ~200 B record per event still in flight plus 48 B (event
//!   id and envelope hash) per event sent to another agency, kept so later
//!   answers and receipts can be matched; no event bodies.
//! - Replay: one `waymark_policy::CaseState` per case, holding the case's
//!   facts the rules need later (consents, offers, referrals, custody
//!   changes, disclosures made under a basis, refusals) and, to tell a
//!   duplicate from a reused event id, each applied event's id and content
//!   digest (48 B, ~80 B with the map) instead of the event. So the replay
//!   is O(cases) plus a fixed small record per distinct event and per fact;
//!   no event body, string or copy is kept once applied.
//! - Timelines: only for the cases asked for (one, or the first
//!   [`AuditOptions::timeline_cases`]).
//!
//! # Invariants
//! - Nothing read from an export is trusted before the verifier accepted the
//!   whole file; findings name the agency, entry seq (or checkpoint size),
//!   record index and event id where they apply.
//! - Findings are sorted by severity (critical first), then rule, then
//!   location; the JSON schema is [`report::SCHEMA`] and documented in
//!   [`report`].

#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
pub mod endpoint;
mod engine;
pub mod finding;
pub mod html;
mod integrity;
mod keys;
mod links;
mod manifest;
#[cfg(any(test, feature = "bench"))]
mod memory;
mod progress;
mod replay;
pub mod report;
pub mod source;
#[cfg(any(test, feature = "bench"))]
pub mod synth;
pub mod timeline;
mod witness;

use std::path::{Path, PathBuf};

pub use finding::{Finding, Location, Severity, rules};
pub use replay::BACKDATE_TOLERANCE_MS;
pub use report::{JournalSummary, Report};
pub use timeline::{CaseTimeline, ConsentPeriod, Handover, Row};
use waymark_types::CaseId;

/// Where journals are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Every `*.wmj` export in a directory.
    Dir(PathBuf),
    /// A live agency's `waymark.v1.JournalService` (`http://host:port`):
    /// its `ExportJournal` stream, audited exactly as an export file (see
    /// [`endpoint`](crate::endpoint) for the spool and the trust model).
    Endpoint(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(d) => write!(f, "{}", d.display()),
            Source::Endpoint(u) => f.write_str(u),
        }
    }
}

/// Why an audit could not run at all (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the directory or a file failed.
    #[error("reading {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `*.wmj` export.
    #[error("no journal exports (*.wmj) in {0}")]
    NoExports(PathBuf),
    /// No directory and no endpoint to audit.
    #[error("nothing to audit: give a directory or an endpoint")]
    NoSources,
    /// The directory to save fetched exports in is not empty.
    #[error("{0} is not empty: fetched exports are saved only into an empty or new directory")]
    SaveDirNotEmpty(PathBuf),
    /// An endpoint's export could not be read completely.
    #[error("fetching the journal export from {url}: {step}")]
    Endpoint {
        /// The endpoint URL.
        url: String,
        /// The step that failed.
        step: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What to audit and show.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Build the timeline of this case only.
    pub case: Option<CaseId>,
    /// Without `case`: build timelines for the first this many cases (0 for none).
    pub timeline_cases: usize,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Verification threads (0: one per core).
    pub threads: usize,
    /// Keep the exports fetched from endpoints in this directory (created if
    /// missing, must be empty), as `<agency>.wmj`: auditing it later as a
    /// [`Source::Dir`] gives the same report. Without it they are spooled to
    /// a private temporary directory removed after the audit.
    pub save_exports: Option<PathBuf>,
    /// The federation's manifest, verified against the authority key the
    /// auditor pins: when set, it (not the export headers) says which keys
    /// each agency may sign with and when (see `manifest.rs`).
    pub manifest: Option<waymark_crypto::manifest::VerifiedManifest>,
}

/// Audits every `*.wmj` export in `dir`.
///
/// # Errors
/// [`AuditError`] when the directory cannot be read or holds no export;
/// everything wrong *inside* the exports is a [`Finding`] in the report.
pub fn audit_dir(dir: &Path, opts: &AuditOptions) -> Result<Report, AuditError> {
    audit(&[Source::Dir(dir.to_owned())], opts)
}

/// Audits the journals of every source together: the exports of each
/// directory (in file-name order), then each endpoint's (in the order
/// given). A journal read from an endpoint is checked exactly as a file.
///
/// # Errors
/// [`AuditError`] when a directory cannot be read or holds no export, an
/// endpoint's export cannot be read completely, or there is no source;
/// everything wrong *inside* the exports is a [`Finding`] in the report.
pub fn audit(sources: &[Source], opts: &AuditOptions) -> Result<Report, AuditError> {
    report::run(sources, opts)
}
