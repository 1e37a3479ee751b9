//! Offline audit of a federation's journal exports.
//!
//! Purpose: let an auditor, inspector or court answer, from the exported
//! journals alone and without trusting any agency or the broker, "who had
//! custody of this person when, on what consent or legal basis did their
//! data move, and was anything altered?".
//!
//! [`audit_dir`] verifies every `*.wmj` export in a directory:
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
//! # Memory bound (honest)
//! - Verification: constant per journal (the verifier's frontier and a
//!   64-signature batch).
//! - Witness checks: O(checkpoints × witnesses), never per entry.
//! - Links: one ~200 B record per event still in flight plus 48 B (event
//!   id and envelope hash) per event sent to another agency, kept so later
//!   answers and receipts can be matched; no event bodies.
//! - Replay: one `waymark_policy::CaseState` per case. The policy core keeps
//!   every applied event of a case inside its state (to tell a duplicate
//!   from a reused id), so this part grows with the events of all cases,
//!   not only with the number of cases. Bounding it needs a policy change
//!   (keep a digest per seen event id instead of the event).
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
mod engine;
pub mod finding;
pub mod html;
mod integrity;
mod keys;
mod links;
mod progress;
mod replay;
pub mod report;
pub mod source;
#[cfg(feature = "bench")]
pub mod synth;
pub mod timeline;
mod witness;

use std::path::{Path, PathBuf};

pub use finding::{Finding, Location, Severity, rules};
pub use replay::BACKDATE_TOLERANCE_MS;
pub use report::{JournalSummary, Report};
pub use timeline::{CaseTimeline, ConsentPeriod, Handover, Row};
use waymark_types::CaseId;

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
}

/// Audits every `*.wmj` export in `dir`.
///
/// # Errors
/// [`AuditError`] when the directory cannot be read or holds no export;
/// everything wrong *inside* the exports is a [`Finding`] in the report.
pub fn audit_dir(dir: &Path, opts: &AuditOptions) -> Result<Report, AuditError> {
    report::run(dir, opts)
}
