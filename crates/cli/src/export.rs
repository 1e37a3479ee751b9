//! `waymark export fhir|receipt`: a case's history from verified journal
//! exports, as a FHIR R5 Bundle or a Kantara Consent Receipt v1.1 (see the
//! `waymark-interop` crate for the mappings). Thin: parse flags, call the
//! library, write the JSON, report what was left out, choose the exit code
//! (0 written, 1 an export does not verify or the case or consent is not
//! there, 64 bad usage, 74 unreadable input or unwritable output).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use waymark_interop::history::History;
use waymark_interop::kantara::{ReceiptOptions, receipt};
use waymark_interop::{CaseRecord, Exports, InteropError, fhir};
use waymark_types::{CaseId, EventId};

/// `waymark export`
#[derive(Debug, Args)]
#[command(
    about = "Export a case from verified journal exports for other tools: a FHIR R5 \
             Bundle, or a Kantara Consent Receipt v1.1 for the person",
    long_about = None
)]
pub(crate) struct ExportArgs {
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// The history of a case as a FHIR R5 Bundle (type collection, JSON):
    /// Organization, ServiceRequest, Task, Consent, AuditEvent, Provenance.
    Fhir(FhirArgs),
    /// A Kantara Consent Receipt v1.1 (JSON) of one consent, for the person
    /// (named by case id only).
    Receipt(ReceiptArgs),
}

/// Flags shared by both exports.
#[derive(Debug, Args)]
struct Common {
    /// The case id.
    #[arg(long)]
    case: String,
    /// Write the JSON to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory holding the journal exports (`*.wmj`), e.g.
    /// `<demo data dir>/exports`. Every export must verify.
    exports_dir: PathBuf,
}

#[derive(Debug, Args)]
struct FhirArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ReceiptArgs {
    #[command(flatten)]
    common: Common,
    /// The consent id (the event id of its consent_granted).
    #[arg(long)]
    consent: String,
    /// `jurisdiction` (default: the rule set the consent was granted under).
    #[arg(long)]
    jurisdiction: Option<String>,
    /// `policyUrl` (default: urn:waymark:rule-set:<rule set>).
    #[arg(long)]
    policy_url: Option<String>,
    /// The controller's contact point: an office or role, not a name.
    #[arg(long)]
    controller_contact: Option<String>,
    /// The controller's street address.
    #[arg(long)]
    controller_address: Option<String>,
    /// The controller's country (ISO 3166-1 alpha-2).
    #[arg(long)]
    controller_country: Option<String>,
    /// The controller's e-mail address.
    #[arg(long)]
    controller_email: Option<String>,
    /// The controller's phone number.
    #[arg(long)]
    controller_phone: Option<String>,
}

/// Runs `waymark export`.
pub(crate) fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ExportCommand::Fhir(a) => fhir_bundle(a),
        ExportCommand::Receipt(a) => consent_receipt(a),
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("waymark: error: {msg}");
    ExitCode::from(64)
}

/// Opens the exports and reads the case; `Err` is the exit code to return.
fn load(c: &Common) -> Result<CaseRecord, ExitCode> {
    let case = CaseId::parse(&c.case).map_err(|e| usage(format!("--case {}: {e}", c.case)))?;
    let failed = |e: InteropError| {
        let code = match &e {
            InteropError::NoExports(_) => 64,
            InteropError::Io { .. } => 74,
            _ => 1,
        };
        match &e {
            // The failure names the record and the problem.
            InteropError::Unverified { failure, .. } => eprintln!("waymark: error: {e}: {failure}"),
            _ => eprintln!("waymark: error: {:#}", anyhow::Error::from(e)),
        }
        ExitCode::from(code)
    };
    let record = Exports::open_dir(&c.exports_dir)
        .and_then(|x| x.case(&case))
        .map_err(failed)?;
    for s in &record.skipped {
        eprintln!(
            "waymark: note: left out {} entry {} (event {}): {}",
            s.journal,
            s.seq,
            if s.event_id.is_empty() {
                "?"
            } else {
                &s.event_id
            },
            s.reason
        );
    }
    Ok(record)
}

fn write(out: Option<&Path>, json: &str) -> anyhow::Result<ExitCode> {
    match out {
        Some(path) => match std::fs::write(path, json) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("waymark: error: writing {}: {e}", path.display());
                Ok(ExitCode::from(74))
            }
        },
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(json.as_bytes())?;
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fhir_bundle(a: FhirArgs) -> anyhow::Result<ExitCode> {
    let record = match load(&a.common) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    for (e, refers_to) in History::of(&record).orphans {
        eprintln!(
            "waymark: note: {} {} answers {refers_to}, which is not in these exports; \
             only its AuditEvent and Provenance are exported",
            e.kind.token(),
            e.event.event_id
        );
    }
    let json = fhir::case_bundle(&record)
        .to_json()
        .context("encoding the FHIR bundle")?;
    write(a.common.out.as_deref(), &json)
}

fn consent_receipt(a: ReceiptArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = EventId::parse(&a.consent) {
        return Ok(usage(format!("--consent {}: {e}", a.consent)));
    }
    let record = match load(&a.common) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let opts = ReceiptOptions {
        jurisdiction: a.jurisdiction,
        policy_url: a.policy_url,
        contact: a.controller_contact,
        address: a.controller_address,
        country: a.controller_country,
        email: a.controller_email,
        phone: a.controller_phone,
    };
    let r = match receipt(&record, &a.consent, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("waymark: error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if !r.missing.is_empty() {
        eprintln!(
            "waymark: note: the journal does not hold {} (required by Kantara v1.1): pass \
             --controller-contact, --controller-address, --controller-email and \
             --controller-phone to complete the receipt",
            r.missing.join(", ")
        );
    }
    let json = r.to_json().context("encoding the consent receipt")?;
    write(a.common.out.as_deref(), &json)
}
