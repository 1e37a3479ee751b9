//! The audit report: running the phases, the text form, and the JSON form.
//!
//! # JSON schema `waymark.audit.v1` (stable; fields are only ever added)
//! ```text
//! {
//!   "schema": "waymark.audit.v1",
//!   "directory": "<dir audited>", // the first directory given ("" if none)
//!   "sources": [ str ],           // every directory and endpoint URL, as given
//!   "clean": bool,                // no finding of severity error or critical
//!   "journals": [ {               // one per export: each directory's *.wmj files
//!                                 // in file-name order, then each endpoint's
//!     "agency": str, "kind": str,
//!     "file": str,                // file name ("" if fetched and not saved)
//!     "endpoint"?: str,           // the URL, if fetched from an endpoint
//!     "verified": bool,           // the journal crate's verifier accepted it
//!     "entries": u64, "checkpoints": u64, "cosignatures": u64,
//!     "signatures_checked": u64, "signatures_unchecked": u64,
//!     "root": hex str,            // Merkle root over all entries ("" if not verified)
//!     "originated": u64, "received": u64, "witnessed": u64, "quarantined": u64
//!   } ],
//!   "totals": { "journals": u64, "entries": u64, "events_applied": u64,
//!               "cases": u64, "signatures_checked": u64,
//!               "findings": { "critical": u64, "error": u64, "warning": u64, "info": u64 } },
//!   "findings": [ {               // sorted: severity (critical first), rule, location
//!     "severity": "critical" | "error" | "warning" | "info",
//!     "rule": str,                // e.g. "witness.rewritten", "policy.disclosure.no_basis"
//!     "location": { "agency": str, "seq"?: u64, "record"?: u64,
//!                   "event_id"?: str, "case_id"?: str },
//!     "message": str
//!   } ],
//!   "timelines": [ { "case_id": str,
//!     "rows": [ { "at": ms, "agency": str, "recipient": str|null, "event": str,
//!                 "event_id": str, "custodian_after": str|null, "basis": str,
//!                 "journal": str, "seq": u64, "finding": [rule, severity]|null } ],
//!     "consents": [ { "consent_id", "recorded_by", "from": ms, "until": ms|null,
//!                     "withdrawn_at": ms|null } ],
//!     "handovers": [ { "at": ms, "from": str, "to": str, "event_id": str } ],
//!     "custodian": str|null } ]
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::endpoint::{export_time_finding, fetch_all};
use crate::engine::{Analysis, analyse};
use crate::finding::{Finding, Location, Severity, rules};
use crate::integrity::{failure_finding, verify_all};
use crate::keys::Keys;
use crate::progress::Progress;
use crate::replay::Track;
use crate::source::{ExportFile, discover};
use crate::timeline::CaseTimeline;
use crate::{AuditError, AuditOptions, Source};

/// The JSON schema id.
pub const SCHEMA: &str = "waymark.audit.v1";

/// One journal's summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalSummary {
    /// The exporting agency (from the header).
    pub agency: String,
    /// Its kind token.
    pub kind: String,
    /// The export file name ("" for an export fetched from an endpoint and
    /// not saved).
    pub file: String,
    /// The endpoint it was fetched from, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Whether the journal crate's verifier accepted the whole file.
    pub verified: bool,
    /// Entries.
    pub entries: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Cosignatures.
    pub cosignatures: u64,
    /// Signatures verified.
    pub signatures_checked: u64,
    /// Signatures not checked (signer's keys unknown).
    pub signatures_unchecked: u64,
    /// Merkle root over all entries, hex.
    pub root: String,
    /// Events originated.
    pub originated: u64,
    /// Events received.
    pub received: u64,
    /// Checkpoints of other agencies witnessed.
    pub witnessed: u64,
    /// Quarantined messages.
    pub quarantined: u64,
}

/// Totals over the whole audit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Export files.
    pub journals: u64,
    /// Entries verified.
    pub entries: u64,
    /// Distinct events applied by the replay.
    pub events_applied: u64,
    /// Cases replayed.
    pub cases: u64,
    /// Signatures verified.
    pub signatures_checked: u64,
    /// Findings per severity token.
    pub findings: BTreeMap<&'static str, u64>,
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The first directory audited ("" if only endpoints were).
    pub directory: String,
    /// Every directory and endpoint audited, as given.
    pub sources: Vec<String>,
    /// No finding of severity error or worse.
    pub clean: bool,
    /// Per journal.
    pub journals: Vec<JournalSummary>,
    /// Totals.
    pub totals: Totals,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// Timelines of the cases asked for.
    pub timelines: Vec<CaseTimeline>,
}

impl Report {
    /// 0 when clean, 1 when any finding is an error or critical.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.clean)
    }

    /// The JSON form (schema [`SCHEMA`]).
    ///
    /// # Errors
    /// Serialisation errors (none in practice).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// The human form: one line per journal, then findings by severity.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_text(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(w, "waymark audit of {}", self.sources.join(", "))?;
        writeln!(w, "\njournals:")?;
        for j in &self.journals {
            let status = if j.verified { "ok  " } else { "FAIL" };
            writeln!(
                w,
                "  {status} {:<20} {:<10} {:>7} entries {:>4} checkpoints {:>4} cosignatures \
                 {:>7} signatures  root {}",
                j.agency,
                j.kind,
                j.entries,
                j.checkpoints,
                j.cosignatures,
                j.signatures_checked,
                &j.root[..j.root.len().min(16)]
            )?;
        }
        let t = &self.totals;
        writeln!(
            w,
            "\n{} cases, {} events replayed, {} signatures verified",
            t.cases, t.events_applied, t.signatures_checked
        )?;
        if self.findings.is_empty() {
            writeln!(w, "\nno findings: CLEAN")?;
            return Ok(());
        }
        writeln!(w, "\nfindings:")?;
        for f in &self.findings {
            writeln!(
                w,
                "  {:<8} {:<40} {}\n           {}",
                f.severity.as_str(),
                f.rule,
                f.location,
                f.message
            )?;
        }
        let counts: Vec<String> = t.findings.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(
            w,
            "\n{}: {}",
            if self.clean { "CLEAN" } else { "FAILED" },
            counts.join(", ")
        )
    }
}

/// Collects the exports of every source: directories listed, endpoints
/// fetched into `spool` (or the save directory). The returned guard keeps a
/// temporary spool alive until the audit is done.
#[allow(clippy::type_complexity)]
fn collect(
    sources: &[Source],
    opts: &AuditOptions,
) -> Result<(Vec<ExportFile>, Vec<Finding>, Option<tempfile::TempDir>), AuditError> {
    if sources.is_empty() {
        return Err(AuditError::NoSources);
    }
    let mut files = Vec::new();
    let mut urls = Vec::new();
    for s in sources {
        match s {
            Source::Dir(dir) => {
                let found = discover(dir)?;
                if found.is_empty() {
                    return Err(AuditError::NoExports(dir.clone()));
                }
                files.extend(found);
            }
            Source::Endpoint(url) => urls.push(url.clone()),
        }
    }
    let mut findings = Vec::new();
    if urls.is_empty() {
        return Ok((files, findings, None));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| AuditError::Io { path, source }
    };
    let (dir, guard) = match &opts.save_exports {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io(d))?;
            if std::fs::read_dir(d).map_err(io(d))?.next().is_some() {
                return Err(AuditError::SaveDirNotEmpty(d.clone()));
            }
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("waymark-audit-")
                .tempdir()
                .map_err(io(&std::env::temp_dir()))?;
            (t.path().to_owned(), Some(t))
        }
    };
    let bar = Progress::start(opts.progress, None);
    let fetched = fetch_all(&urls, &dir, bar.counter.clone());
    bar.finish();
    for f in fetched? {
        let mut e = ExportFile::read(f.path)?;
        if let Some(h) = &e.header {
            let at = h
                .exported_at
                .as_ref()
                .map(|t| waymark_crypto::timestamp_from_proto(t).millis());
            findings.extend(export_time_finding(&h.agency_id, &f.url, at, f.window));
        }
        e.endpoint = Some(f.url);
        // Saved under the agency's name, so the directory audits as usual;
        // a second export of one agency keeps its spool name.
        if guard.is_none()
            && let Some(h) = &e.header
            && waymark_types::AgencyId::new(&h.agency_id).is_ok()
        {
            let named = dir.join(format!("{}.wmj", h.agency_id));
            if !named.exists() {
                std::fs::rename(&e.path, &named).map_err(io(&e.path))?;
                e.path = named;
            }
        }
        files.push(e);
    }
    Ok((files, findings, guard))
}

/// Runs every phase.
pub(crate) fn run(sources: &[Source], opts: &AuditOptions) -> Result<Report, AuditError> {
    let (files, mut findings, _spool) = collect(sources, opts)?;
    let mut keys = match &opts.manifest {
        Some(m) => Keys::from_manifest(m),
        None => Keys::default(),
    };
    let mut seen = HashMap::new();
    // (agency, file index) of files with a readable header and a new agency id.
    let mut usable = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(h) = &f.header else { continue };
        if seen.insert(h.agency_id.clone(), i).is_some() {
            findings.push(Finding::new(
                Severity::Critical,
                rules::JOURNAL_DUPLICATE_AGENCY,
                Location::journal(&h.agency_id),
                format!("{} is a second export of this agency", f.origin()),
            ));
            continue;
        }
        match &opts.manifest {
            Some(m) => findings.extend(crate::manifest::check_header(m, h)),
            None => keys.add(h),
        }
        usable.push((h.agency_id.clone(), i));
    }
    let exported: HashMap<String, i64> = usable
        .iter()
        .filter_map(|(a, i)| {
            let t = files[*i].header.as_ref()?.exported_at.as_ref()?;
            Some((a.clone(), waymark_crypto::timestamp_from_proto(t).millis()))
        })
        .collect();
    let track = match opts.case {
        Some(c) => Track::One(c),
        None => Track::First(opts.timeline_cases),
    };
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let progress = Progress::start(opts.progress, Some(files.iter().map(|f| f.bytes).sum()));
    let journals = |ok: &dyn Fn(usize) -> bool| {
        usable
            .iter()
            .filter(|(_, i)| ok(*i))
            .map(|(a, i)| (a.clone(), paths[*i]))
            .collect::<Vec<_>>()
    };
    // Optimistic: analyse every journal while the verifier runs.
    let (verdicts, first) = std::thread::scope(|s| {
        let v = s.spawn(|| verify_all(&paths, &keys.ring, threads));
        let a = analyse(
            &journals(&|_| true),
            &exported,
            &keys,
            track.clone(),
            progress.counter.clone(),
        );
        (v.join().unwrap_or_default(), a)
    });
    progress.finish();
    let good = |i: usize| verdicts.get(i).is_some_and(Result::is_ok);
    // A journal that failed verification is not trusted: redo the analysis
    // without it, so nothing it claims counts as evidence.
    let analysis: Analysis = if usable.iter().all(|(_, i)| good(*i)) {
        first
    } else {
        analyse(&journals(&good), &exported, &keys, track, None)
    };
    let mut summaries = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let agency = f.header.as_ref().map_or("?", |h| h.agency_id.as_str());
        let mut js = JournalSummary {
            agency: agency.to_owned(),
            kind: f
                .header
                .as_ref()
                .map(|h| h.agency_kind.clone())
                .unwrap_or_default(),
            file: if f.endpoint.is_some() && opts.save_exports.is_none() {
                String::new()
            } else {
                f.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            endpoint: f.endpoint.clone(),
            ..JournalSummary::default()
        };
        match &verdicts[i] {
            Ok(s) => {
                js.verified = true;
                js.entries = s.entries;
                js.checkpoints = s.checkpoints;
                js.cosignatures = s.cosignatures;
                js.signatures_checked = s.signatures_checked;
                js.signatures_unchecked = s.signatures_unchecked;
                js.root = hex::encode(s.root);
            }
            Err(e) => findings.push(failure_finding(agency, &f.path, e)),
        }
        if let Some(c) = analysis.counts.get(agency).filter(|_| js.verified) {
            js.originated = c.originated;
            js.received = c.received;
            js.witnessed = c.witnessed;
            js.quarantined = c.quarantined;
        }
        summaries.push(js);
    }
    findings.extend(analysis.findings);
    Ok(assemble(
        sources,
        summaries,
        findings,
        analysis.timelines,
        analysis.cases,
        analysis.events_applied,
    ))
}

fn assemble(
    sources: &[Source],
    journals: Vec<JournalSummary>,
    mut findings: Vec<Finding>,
    timelines: BTreeMap<waymark_types::CaseId, CaseTimeline>,
    cases: usize,
    events_applied: u64,
) -> Report {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.location.cmp(&b.location))
    });
    let mut timelines: Vec<CaseTimeline> = timelines.into_values().collect();
    // Mark every finding about an event on its timeline row.
    for f in &findings {
        let Some(id) = &f.location.event_id else {
            continue;
        };
        for row in timelines.iter_mut().flat_map(|t| t.rows.iter_mut()) {
            if &row.event_id == id && row.finding.as_ref().is_none_or(|x| x.1 < f.severity) {
                row.finding = Some((f.rule.clone(), f.severity));
            }
        }
    }
    let mut totals = Totals {
        journals: journals.len() as u64,
        entries: journals.iter().map(|j| j.entries).sum(),
        events_applied,
        cases: cases as u64,
        signatures_checked: journals.iter().map(|j| j.signatures_checked).sum(),
        findings: BTreeMap::new(),
    };
    for s in [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
    ] {
        let n = findings.iter().filter(|f| f.severity == s).count() as u64;
        totals.findings.insert(s.as_str(), n);
    }
    Report {
        schema: SCHEMA,
        directory: sources
            .iter()
            .find_map(|s| match s {
                Source::Dir(d) => Some(d.display().to_string()),
                Source::Endpoint(_) => None,
            })
            .unwrap_or_default(),
        sources: sources.iter().map(ToString::to_string).collect(),
        clean: !findings.iter().any(|f| f.severity.fails()),
        journals,
        totals,
        findings,
        timelines,
    }
}
