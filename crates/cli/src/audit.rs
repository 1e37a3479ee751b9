//! `waymark audit [DIR] [--endpoint URL]...`: verify every journal export in
//! DIR and/or the journals of live agencies, read over their
//! `JournalService.ExportJournal` and checked exactly as export files (see
//! the `waymark-audit` crate); with `--manifest` and `--authority-key` the
//! keys are pinned to the federation's signed manifest. Thin: parse flags, call the library, print,
//! choose the exit code (0 clean, 1 any finding of severity error or worse,
//! 64 bad usage, 74 unreadable input or unreachable endpoint).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use waymark_audit::{AuditError, AuditOptions, Source, audit, html};
use waymark_types::CaseId;

/// Cases drawn in the HTML report when no `--case` is given.
const HTML_CASES: usize = 20;

/// `waymark audit`
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Directory holding the exports (`*.wmj`), e.g. `<demo data dir>/exports`.
    dir: Option<PathBuf>,
    /// A live agency's gRPC address (`http://host:port`); its journal is read
    /// with `JournalService.ExportJournal` and audited exactly as an export
    /// file, its keys taken from that export's header. Repeatable; with or
    /// without DIR.
    #[arg(long = "endpoint", value_name = "URL")]
    endpoints: Vec<String>,
    /// Keep the exports read from endpoints in this (new or empty) directory
    /// as `<agency>.wmj`, so the audit can be repeated offline on the same bytes.
    #[arg(long, value_name = "DIR")]
    save_exports: Option<PathBuf>,
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
    /// The federation's signed manifest (`federation.toml`, with its `.sig`
    /// beside it): each agency's keys and their validity are then taken from
    /// it, not from the exports' headers, and headers that disagree are
    /// findings (`manifest.*`). Needs --authority-key.
    #[arg(long, value_name = "FILE", requires = "authority_key")]
    manifest: Option<PathBuf>,
    /// The federation authority's Ed25519 public key (64 hex digits) the
    /// manifest must be signed by: pin it from a source you trust, not from
    /// the agencies audited.
    #[arg(long, value_name = "HEX", requires = "manifest")]
    authority_key: Option<String>,
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
    let manifest = match (&args.manifest, &args.authority_key) {
        (Some(path), Some(hex)) => {
            let key = match waymark_crypto::manifest::decode_key(hex) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("waymark: error: --authority-key: {e}");
                    return Ok(ExitCode::from(64));
                }
            };
            match waymark_crypto::manifest::load_verified(path, &key) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("waymark: error: --manifest: {e}");
                    return Ok(ExitCode::from(74));
                }
            }
        }
        _ => None,
    };
    let mut sources: Vec<Source> = args.dir.iter().cloned().map(Source::Dir).collect();
    sources.extend(args.endpoints.iter().cloned().map(Source::Endpoint));
    let opts = AuditOptions {
        case,
        timeline_cases: if args.html.is_some() { HTML_CASES } else { 0 },
        progress: true,
        threads: args.threads,
        save_exports: args.save_exports.clone(),
        manifest,
    };
    let report = match audit(&sources, &opts) {
        Ok(r) => r,
        Err(
            e @ (AuditError::NoExports(_) | AuditError::NoSources | AuditError::SaveDirNotEmpty(_)),
        ) => {
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: AuditArgs,
    }

    fn parse(args: &[&str]) -> AuditArgs {
        Cmd::try_parse_from(std::iter::once("audit").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn endpoints_repeat_with_or_without_a_directory() {
        let a = parse(&[
            "--endpoint",
            "http://127.0.0.1:1",
            "--endpoint",
            "http://[::1]:2",
        ]);
        assert_eq!(a.dir, None);
        assert_eq!(a.endpoints, ["http://127.0.0.1:1", "http://[::1]:2"]);
        let a = parse(&["exports", "--endpoint", "http://127.0.0.1:1"]);
        assert_eq!(a.dir, Some(PathBuf::from("exports")));
        assert_eq!(a.endpoints.len(), 1);
    }

    #[test]
    fn nothing_to_audit_is_bad_usage() {
        let code = run(parse(&[])).unwrap();
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::from(64)));
    }

    #[test]
    fn an_unreachable_endpoint_is_unreadable_input() {
        // A port that was just free: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let code = run(parse(&["--endpoint", &url])).unwrap();
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::from(74)));
    }
}
