//! `waymark demo`: the README's main job. Starts the sample federation
//! (a supervised `nats-server` and one process per agency), drives the demo
//! cases through it over gRPC with a progress bar, checks every case at
//! every agency, prints a per-case custody summary, and leaves each
//! agency's journal and a verified export under the data directory for
//! `waymark audit`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use waymark_federation::demo::{self, DemoOptions, Outcome, Progress};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions};

/// `waymark demo`
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where keys, journals, logs and exports are written. A later run in
    /// the same directory continues the same federation (journals are
    /// append-only).
    #[arg(long, default_value = ".waymark/demo")]
    data_dir: PathBuf,
    /// How many cases to drive through the federation (stories cycle every 6).
    #[arg(long, default_value_t = 20)]
    cases: usize,
    /// Cases driven at the same time.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn case_done(&self, done: usize, total: usize, o: &Outcome) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.set_message(format!("{:?}", o.story));
    }
    fn phase(&self, what: &str) {
        self.0.println(format!("  {what}"));
    }
}

/// Runs the demo.
pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "waymark demo: starting the sample federation in {}",
        args.data_dir.display()
    )?;
    let fed = Federation::start(LaunchOptions::sample(
        &args.data_dir,
        AgencyProgram::this_executable()?,
    ))
    .await?;
    writeln!(out, "  nats-server   {}", fed.nats_url())?;
    for e in fed.endpoints().values() {
        writeln!(
            out,
            "  {:<20} {:<10} {}",
            e.id.as_str(),
            e.kind.as_str(),
            e.url()
        )?;
    }
    let bar = ProgressBar::new(args.cases as u64);
    bar.set_style(
        ProgressStyle::with_template("  cases [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let opts = DemoOptions {
        cases: args.cases,
        concurrency: args.concurrency,
    };
    let result = demo::run(&fed, &opts, Arc::new(Bar(bar.clone()))).await;
    bar.finish_and_clear();
    let stopped = fed.stop().await;
    let report = result?;
    stopped.context("stopping the federation")?;

    writeln!(out, "\nper-case custody summary:")?;
    writeln!(out, "  {:<36}  {:<20}  story", "case", "custodian")?;
    for o in &report.outcomes {
        writeln!(
            out,
            "  {:<36}  {:<20}  {}",
            o.case,
            o.custodian,
            o.story.describe()
        )?;
        for r in &o.refusals {
            writeln!(out, "      refused by rule {r}")?;
        }
        for n in &o.notes {
            writeln!(out, "      {n}")?;
        }
    }
    writeln!(
        out,
        "\nevery case checked at every agency: custodians agree, and no agency knows a case it was not told about."
    )?;
    writeln!(
        out,
        "\njournals exported over gRPC and verified from the files:"
    )?;
    for e in &report.exports {
        writeln!(
            out,
            "  {:<20} {:>5} entries  {:>3} checkpoints  {:>5} signatures  {}",
            e.agency,
            e.summary.entries,
            e.summary.checkpoints,
            e.summary.signatures_checked,
            e.path.display()
        )?;
    }
    writeln!(
        out,
        "\naudit them with: waymark audit {}",
        args.data_dir.join("exports").display()
    )?;
    Ok(ExitCode::SUCCESS)
}
