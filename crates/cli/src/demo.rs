//! `waymark demo`: the current working slice of the system.
//!
//! Until the agency services and the bus are wired into processes, the demo
//! runs a federation of three agencies (police and two shelters) in one process: every event is signed,
//! checked by the policy core in the sender's and the receiver's own view,
//! journaled durably (fsync) at both, and acknowledged with a signed receipt
//! that completes the sender's outbox item. At the end every journal is
//! checkpointed, exported to `<data-dir>/exports/<agency>.wmj` and verified
//! from the export file alone, as an auditor would.

mod federation;
mod scenario;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use waymark_journal::{ExportMeta, export, verify_export};
use waymark_proto::v1 as pb;
use waymark_types::Timestamp;

use federation::Federation;

/// `waymark demo`
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where journals, keys and exports are written. Must not hold an earlier
    /// demo run (journals are append-only).
    #[arg(long, default_value = ".waymark/demo")]
    data_dir: PathBuf,
    /// How many cases to drive through the federation.
    #[arg(long, default_value_t = 20)]
    cases: usize,
}

/// Runs the demo.
pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.data_dir.join("journals").exists() {
        anyhow::bail!(
            "{} already holds a demo run; journals are append-only, so choose a new --data-dir or remove it",
            args.data_dir.display()
        );
    }
    let mut fed = Federation::open(&args.data_dir, scenario::MEMBERS)?;
    writeln!(
        out,
        "waymark demo: {} agencies, {} cases, data in {}",
        fed.agencies.len(),
        args.cases,
        args.data_dir.display()
    )?;

    // Simulated time: the cases start 60 days ago, one a day.
    let start = Timestamp::now().plus_days(-60);
    let mut reports = Vec::new();
    for i in 0..args.cases {
        let report = scenario::run_case(&mut fed, i, start.plus_days(i64::try_from(i)?))
            .with_context(|| format!("case {} of the story", i + 1))?;
        write!(out, "\r  cases driven: {}/{}", i + 1, args.cases)?;
        out.flush()?;
        reports.push(report);
    }
    writeln!(out)?;

    writeln!(out, "\nper-case custody summary (police view):")?;
    writeln!(out, "  {:<36}  {:<18}  story", "case", "custodian")?;
    for r in &reports {
        writeln!(
            out,
            "  {:<36}  {:<18}  {}",
            r.case,
            r.custodian,
            r.story.describe()
        )?;
        for (rule, reason) in &r.refusals {
            writeln!(out, "      refused by {rule}: {reason}")?;
        }
        for note in &r.notes {
            writeln!(out, "      {note}")?;
        }
    }

    writeln!(
        out,
        "\njournals, exported and verified from the export files:"
    )?;
    let now = Timestamp::now();
    let exports = args.data_dir.join("exports");
    std::fs::create_dir_all(&exports)?;
    for agency in &fed.agencies {
        agency.journal.checkpoint_now(now)?;
        let path = exports.join(format!("{}.wmj", agency.id));
        let meta = ExportMeta {
            agency_kind: agency.kind,
            keys: vec![pb::PublicKey {
                key_id: agency.key.key_id().to_string(),
                ed25519: agency.key.public_key().as_bytes().to_vec(),
                valid_from: Some(waymark_crypto::proto_from_timestamp(
                    Timestamp::from_millis(0),
                )),
                valid_until: None,
            }],
            exported_at: now,
        };
        let mut w = BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        export(&agency.journal, &mut w, &meta)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let summary = verify_export(BufReader::new(File::open(&path)?), &fed.keys)
            .with_context(|| format!("verifying {}", path.display()))?;
        writeln!(
            out,
            "  {:<20} {:>5} entries  {:>2} checkpoint(s)  {:>5} signatures verified  root {}",
            agency.id.as_str(),
            summary.entries,
            summary.checkpoints,
            summary.signatures_checked,
            hex::encode(&summary.root[..8])
        )?;
    }
    writeln!(
        out,
        "\nexports in {}; every journal verified.",
        exports.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
