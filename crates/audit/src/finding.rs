//! Findings: what the audit reports, how bad it is, and exactly where.
//!
//! Rule ids are stable snake_case tokens `<area>.<rule>` that scripts match
//! on; they are never renamed once released. Policy violations found by the
//! replay are reported as `policy.<policy rule code>` (e.g.
//! `policy.disclosure.no_basis`), so every rule of the policy core has an id
//! here without a table to keep in step.

use serde::Serialize;

/// How bad a finding is. Ordered: `Critical` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context for the reader (e.g. signatures that could not be checked
    /// because the signer's export is absent).
    Info,
    /// Worth a look, not a breach by itself (e.g. an event still in flight).
    Warning,
    /// A rule was broken or a record does not hold together.
    Error,
    /// Evidence was altered, forged or equivocated.
    Critical,
}

impl Severity {
    /// The lowercase token used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Whether a finding of this severity makes the audit fail (exit 1).
    pub fn fails(self) -> bool {
        self >= Severity::Error
    }
}

/// Where a finding is: the journal (agency) and, when it concerns one
/// record, its entry seq, record index in the export file and event id.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// The agency whose export holds the evidence.
    pub agency: String,
    /// The entry seq (1-based) or, for checkpoint findings, the checkpoint size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The 0-based record index in the export file, for integrity findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// The event concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The case concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
}

impl Location {
    /// A location in `agency`'s journal.
    pub fn journal(agency: &str) -> Self {
        Self {
            agency: agency.to_owned(),
            ..Self::default()
        }
    }

    /// A location at entry `seq` of `agency`'s journal.
    pub fn entry(agency: &str, seq: u64) -> Self {
        Self {
            agency: agency.to_owned(),
            seq: Some(seq),
            ..Self::default()
        }
    }

    /// The same location naming an event.
    pub fn with_event(mut self, event_id: &str) -> Self {
        if !event_id.is_empty() {
            self.event_id = Some(event_id.to_owned());
        }
        self
    }

    /// The same location naming a case.
    pub fn with_case(mut self, case_id: &str) -> Self {
        if !case_id.is_empty() {
            self.case_id = Some(case_id.to_owned());
        }
        self
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.agency)?;
        if let Some(s) = self.seq {
            write!(f, " #{s}")?;
        }
        if let Some(r) = self.record {
            write!(f, " (record {r})")?;
        }
        if let Some(e) = &self.event_id {
            write!(f, " event {e}")?;
        }
        Ok(())
    }
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Stable rule id, e.g. `witness.rewritten` (see [`rules`]).
    pub rule: String,
    /// Where.
    pub location: Location,
    /// What is wrong, for a human.
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        severity: Severity,
        rule: impl Into<String>,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            rule: rule.into(),
            location,
            message: message.into(),
        }
    }
}

/// The audit's own rule ids. Policy findings are `policy.<code>` with the
/// policy core's codes (`waymark_policy::Rule::code`).
pub mod rules {
    /// The export file is not readable as a Waymark export.
    pub const JOURNAL_MALFORMED: &str = "journal.malformed";
    /// The export ends before its signed trailer.
    pub const JOURNAL_TRUNCATED: &str = "journal.truncated";
    /// An entry's `prev_hash` does not match the entry before it.
    pub const JOURNAL_CHAIN_BROKEN: &str = "journal.chain_broken";
    /// An entry seq is skipped: an entry was deleted.
    pub const JOURNAL_ENTRY_MISSING: &str = "journal.entry_missing";
    /// Entries are out of order.
    pub const JOURNAL_ENTRY_REORDERED: &str = "journal.entry_reordered";
    /// An event signature fails with the keys valid at its time.
    pub const JOURNAL_SIGNATURE_INVALID: &str = "journal.signature_invalid";
    /// A checkpoint is misplaced, malformed, badly signed or has a wrong root.
    pub const JOURNAL_CHECKPOINT_INVALID: &str = "journal.checkpoint_invalid";
    /// A cosignature record does not match its checkpoint or its signature fails.
    pub const JOURNAL_COSIGNATURE_INVALID: &str = "journal.cosignature_invalid";
    /// The header is malformed or altered.
    pub const JOURNAL_HEADER_INVALID: &str = "journal.header_invalid";
    /// The signed trailer fails or does not match the file.
    pub const JOURNAL_TRAILER_INVALID: &str = "journal.trailer_invalid";
    /// An event is signed by a key that is not its sender's.
    pub const JOURNAL_SIGNER_MISMATCH: &str = "journal.signer_mismatch";
    /// An originated event names another sender, or a received one another recipient.
    pub const JOURNAL_MISATTRIBUTED: &str = "journal.misattributed";
    /// Signatures by agencies whose export is absent were not checked.
    pub const JOURNAL_UNVERIFIED_SIGNATURES: &str = "journal.unverified_signatures";
    /// A bus message the agency quarantined (bad input kept as evidence).
    pub const JOURNAL_QUARANTINED: &str = "journal.quarantined";
    /// Two exports claim the same agency.
    pub const JOURNAL_DUPLICATE_AGENCY: &str = "journal.duplicate_agency";
    /// An export read from an endpoint is dated (header `exported_at`) more
    /// than [`crate::BACKDATE_TOLERANCE_MS`] away from when the auditor read
    /// it: a stale or backdated export, or a badly set clock.
    pub const ENDPOINT_EXPORT_TIME: &str = "endpoint.export_time";
    /// The agency's export does not hold the history its witnesses cosigned.
    pub const WITNESS_REWRITTEN: &str = "witness.rewritten";
    /// The agency signed two different roots for one size.
    pub const WITNESS_EQUIVOCATION: &str = "witness.equivocation";
    /// A cosignature the witness never journaled as witnessed.
    pub const WITNESS_UNJOURNALED: &str = "witness.cosignature_unjournaled";
    /// Equivocation evidence whose signatures do not verify.
    pub const WITNESS_BAD_EVIDENCE: &str = "witness.bad_evidence";
    /// A receipt for an event that does not exist.
    pub const LINK_FORGED_RECEIPT: &str = "link.forged_receipt";
    /// An answer (acceptance, rejection, acknowledgement) to an unknown event.
    pub const LINK_DANGLING: &str = "link.dangling_ref";
    /// A reference's envelope hash, or a copy's bytes, differ from the original.
    pub const LINK_HASH_MISMATCH: &str = "link.hash_mismatch";
    /// An event received from an agency whose journal does not hold it.
    pub const LINK_NOT_ORIGINATED: &str = "link.not_originated";
    /// A disclosure with no receipt and no received copy.
    pub const LINK_UNDELIVERED: &str = "link.undelivered";
    /// A delivered disclosure whose receipt is not in the sender's journal.
    pub const LINK_RECEIPT_MISSING: &str = "link.receipt_missing";
    /// A receipt for an event the recipient's journal does not hold.
    pub const LINK_NOT_JOURNALED: &str = "link.not_journaled_by_recipient";
    /// A receipt's `journal_seq` is not where the recipient journaled the event.
    pub const LINK_RECEIPT_SEQ: &str = "link.receipt_seq_mismatch";
    /// A reference that cannot be checked: neither party's export is present.
    pub const LINK_UNVERIFIABLE: &str = "link.unverifiable";
    /// A consent whose validity starts before it was journaled.
    pub const CONSENT_BACKDATED: &str = "consent.backdated";
    /// A withdrawal not yet acknowledged by an agency that must.
    pub const WITHDRAWAL_OUTSTANDING: &str = "withdrawal.outstanding";
    /// An export of an agency the federation manifest does not list.
    pub const MANIFEST_UNKNOWN_AGENCY: &str = "manifest.unknown_agency";
    /// An export whose header names another kind than the manifest.
    pub const MANIFEST_KIND_MISMATCH: &str = "manifest.kind_mismatch";
    /// An export header lists a key the manifest does not give its agency.
    pub const MANIFEST_KEY_NOT_LISTED: &str = "manifest.key_not_listed";
    /// An export header claims a key valid outside the manifest's window
    /// for it (e.g. still valid after the manifest revoked it).
    pub const MANIFEST_KEY_WINDOW: &str = "manifest.key_window";
    /// An event that does not decode as a Waymark event.
    pub const EVENT_MALFORMED: &str = "event.malformed";
    /// Prefix of policy violations found by the replay.
    pub const POLICY_PREFIX: &str = "policy.";
}
