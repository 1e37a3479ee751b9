//! `waymark audit DIR`: verify every journal export in DIR (see the
//! `waymark-audit` crate). Thin: parse flags, call the library, print,
//! choose the exit code (0 clean, 1 any finding of severity error or worse,
//! 64 bad usage, 74 unreadable input).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use waymark_audit::{AuditError, AuditOptions, audit_dir, html};
use waymark_types::CaseId;

/// Cases drawn in the HTML report when no `--case` is given.
const HTML_CASES: usize = 20;

/// `waymark audit`
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Directory holding the exports (`*.wmj`), e.g. `<demo data dir>/exports`.
    dir: PathBuf,
    /// Print the custody timeline of this case (its id) as a table.
    #[arg(long)]
    case: Option<String>,
    /// Print the machine-readable report (schema `waymark.audit.v1`) instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report with SVG timelines to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Verification threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Runs the audit.
pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let case = match &args.case {
        Some(c) => match CaseId::parse(c) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("waymark: error: --case {c}: {e}");
                return Ok(ExitCode::from(64));
            }
        },
        None => None,
    };
    let opts = AuditOptions {
        case,
        timeline_cases: if args.html.is_some() { HTML_CASES } else { 0 },
        progress: true,
        threads: args.threads,
    };
    let report = match audit_dir(&args.dir, &opts) {
        Ok(r) => r,
        Err(e @ AuditError::NoExports(_)) => {
            eprintln!("waymark: error: {e}");
            return Ok(ExitCode::from(64));
        }
        Err(e) => {
            eprintln!("waymark: error: {:#}", anyhow::Error::from(e));
            return Ok(ExitCode::from(74));
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json()?)?;
    } else {
        report.write_text(&mut out)?;
        if case.is_some() {
            writeln!(out)?;
            match report.timelines.first() {
                Some(t) => t.write_table(&mut out)?,
                None => writeln!(
                    out,
                    "case {} does not occur in these journals",
                    args.case.unwrap_or_default()
                )?,
            }
        }
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            writeln!(out, "\nHTML report written to {}", path.display())?;
        }
    }
    Ok(ExitCode::from(report.exit_code()))
}
