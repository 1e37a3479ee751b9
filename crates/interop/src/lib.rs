//! Exports of verified Waymark journals for existing tooling.
//!
//! Purpose: let integrators and auditors take a case's history out of
//! Waymark into the tools they already run: a FHIR R5 server or validator
//! ([`fhir`]), and a Kantara Consent Receipt v1.1 that the agency hands to
//! the person who consented ([`kantara`]). Both are read from journal
//! exports (`*.wmj`, see `waymark-journal`) that verify first
//! ([`source`]); nothing is read from a live agency.
//!
//! # Commands
//! ```text
//! waymark export fhir --case CASE_ID [--out FILE] EXPORTS_DIR
//! waymark export receipt --case CASE_ID --consent CONSENT_ID [--out FILE]
//!     [--jurisdiction TEXT] [--policy-url URL] [--controller-contact TEXT]
//!     [--controller-address TEXT] [--controller-country CC]
//!     [--controller-email ADDR] [--controller-phone NUMBER] EXPORTS_DIR
//! ```
//! Both verify every export in `EXPORTS_DIR` and fail (exit 1) if one does
//! not verify; both write JSON to stdout unless `--out` is given, and list
//! on stderr the events left out and the receipt fields the journal cannot
//! supply.
//!
//! # Invariants
//! - **No personal data is ever exported.** Events carry none by protocol:
//!   the person is a case id, agencies are agency ids, staff are roles.
//!   Sealed sections (personal data encrypted to a recipient) are never
//!   read, copied or hashed into the output, and neither are the signed
//!   payload bytes that contain them; only their declared data categories
//!   appear. The free-text fields copied (decline and cancellation details,
//!   a handover's reason, a legal basis's justification, the obtaining
//!   role) are those the protocol defines as free of personal data.
//! - **Nothing is invented.** Every element comes from a verified signed
//!   event or an export header; an element with no source is left out
//!   (e.g. no `Patient` resource, no organisation names, no consent
//!   status computed from today's date). Events that do not verify on their
//!   own, or answer a request that is not in the exports, produce nothing
//!   but a note ([`source::CaseRecord::skipped`],
//!   [`history::History::orphans`]).
//! - **Deterministic.** The same exports give byte-identical output:
//!   stable ordering everywhere, no clock, ids derived from Waymark ids.
//!
//! # FHIR mapping (R5, `Bundle.type = collection`)
//! | Waymark | FHIR |
//! |---|---|
//! | agency | `Organization`, `identifier` `urn:waymark:agency`, `type` agency kind |
//! | person | no resource: a logical `Patient` reference by `urn:waymark:case` |
//! | referral (`referral_*`) | `ServiceRequest` (id = referral id) + a fulfilment `Task` (`basedOn`, `focus` → it) |
//! | handover (`handover_*`) | `Task` (id = handover id), code `handover` |
//! | consent (`consent_*`, `withdrawal_acknowledged`) | `Consent` (id = consent id) |
//! | every sent event except receipts | `AuditEvent` (disclosure, DICOM 110106 Export) |
//! | receipt | `AuditEvent` (DICOM 110107 Import, outcome 0 journaled / 4 quarantined) |
//! | every event that produced or changed one of the above | `Provenance` with the envelope signature |
//!
//! A withdrawal's acknowledgements are the `AuditEvent`s of the
//! `withdrawal_acknowledged` events (sent to the withdrawing agency); the
//! `Consent` itself does not list them.
//!
//! Referral state (`waymark_policy::ReferralStatus`) to status:
//!
//! | referral | `ServiceRequest.status` | fulfilment `Task.status` |
//! |---|---|---|
//! | requested | active | requested |
//! | received | active | received |
//! | accepted | active | accepted |
//! | in progress | active | in-progress |
//! | completed | completed | completed |
//! | rejected | revoked | rejected (+ `statusReason`) |
//! | failed | revoked | failed (+ `statusReason`) |
//! | cancelled | revoked | cancelled |
//!
//! Rejected, failed and cancelled referrals are real outcomes, not data
//! entered in error, so they are `revoked` (R5: "terminated prior to the
//! known full completion"), never `entered-in-error`. `intent` is `order`,
//! `priority` `urgent` or `routine`, `code` the service type, `reason` the
//! disclosure's purpose, `supportingInfo` the consent relied on.
//!
//! Handover offer state (`waymark_policy::OfferStatus`) to `Task.status`:
//! offered → `requested`; accepted → `completed` (the transfer of custody is
//! done); rejected → `rejected`; cancelled → `cancelled`; expired → `failed`
//! with `statusReason` `expired`. `requester` is the offering custodian,
//! `requestedPerformer` the offered agency, `owner` the custodian after the
//! handover (the offered agency once accepted, else still the offerer),
//! `restriction.period.end` the offer's expiry.
//!
//! `Consent`: `status` `active`, `inactive` once withdrawn; `period` from
//! `valid_from` to `valid_until`, or to the withdrawal's `effective_at` if
//! earlier; `decision` `permit`; one `provision` with `actor`s (named
//! recipients as `IRCP` with a reference; recipient kinds as `IRCP` plus
//! the agency-kind code), `action` `disclose`, `purpose` and `code` (data
//! categories) as Waymark codings; `grantor` the person (and a
//! `RelatedPerson` by role when a representative consented); `controller`
//! the obtaining agency. Collection method and language are in the receipt.
//!
//! `Provenance`: `target` the resources the event created or changed (a
//! forward, a receipt or a withdrawal acknowledgement changes none) and the
//! event's `AuditEvent`;
//! `activity` the event kind; `occurredDateTime` `occurred_at`; `recorded`
//! when the journal recorded it; `policy` `urn:waymark:rule-set:<rule set>`;
//! `agent` the signing agency (`author`); `entity` the event it answers
//! (`source`) or forwards (`quotation`), by `urn:waymark:event`; one
//! `signature` per envelope signature: `type` ASTM author's signature,
//! `when` `occurred_at` (the time the signature is verified at), `who` the
//! signing agency, `targetFormat` the DSSE payload type
//! `application/vnd.waymark.event.v1+proto`, `sigFormat`
//! [`codes::SIG_FORMAT`], `data` base64 of the 64-byte Ed25519 signature,
//! and the key id in extension [`codes::EXT_KEY_ID`]. The payload is not
//! exported (it holds sealed ciphertext): to check a signature, verify the
//! exports themselves (`waymark audit`), where the envelope with SHA-256
//! [`codes::EXT_ENVELOPE_SHA256`] is.
//!
//! Code systems and identifier systems are listed in [`codes`]; Waymark
//! codes are Waymark's own tokens under `urn:waymark:codesystem:<name>`.
//!
//! # Not mapped (yet)
//! Pathway facts kept in one journal (case opening and closure, police
//! decisions, admissions, return and reintegration steps, refusals) produce
//! no resource unless they were sent to another agency, in which case the
//! disclosure's `AuditEvent` records them.

#![forbid(unsafe_code)]

pub mod codes;
pub mod fhir;
pub mod history;
pub mod kantara;
pub mod source;

use std::path::PathBuf;

pub use source::{CaseRecord, Exports};
use waymark_journal::VerifyFailure;
use waymark_types::CaseId;

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    /// A file or directory could not be read.
    #[error("reading {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `*.wmj` file.
    #[error("no journal exports (*.wmj) in {0}")]
    NoExports(PathBuf),
    /// A file does not start like an export, or its header's keys are bad.
    #[error("{path} is not a usable journal export: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An export does not verify; nothing is exported from it.
    #[error("{path} does not verify")]
    Unverified {
        /// The file.
        path: PathBuf,
        /// The first bad record.
        #[source]
        failure: VerifyFailure,
    },
    /// No export holds an event of the case.
    #[error("case {0} does not occur in these exports")]
    UnknownCase(CaseId),
    /// The consent is not a verified consent grant of the case.
    #[error("no verified consent_granted {consent} of case {case} in these exports")]
    UnknownConsent {
        /// The case.
        case: CaseId,
        /// The consent id asked for.
        consent: String,
    },
}
