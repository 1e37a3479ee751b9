//! Imports cases from a CSV in HTCDS layout into an agency (the library
//! behind `waymark import htcds`). Run it twice: the second run records
//! nothing new. Exit code 1 when any row was rejected.
//!
//! ```text
//! cargo run -p waymark-client --example import_htcds -- \
//!     http://127.0.0.1:PORT_OF_bg-police-sofia crates/client/tests/data/htcds_sample.csv
//! ```

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use waymark_client::htcds::{self, ImportOptions, Report};
use waymark_client::{Client, ConnectOptions};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, file] = args.as_slice() else {
        bail!("usage: import_htcds ADDRESS FILE.csv");
    };
    let report = run(address, Path::new(file)).await?;
    writeln!(std::io::stdout().lock(), "{report}")?;
    Ok(if report.rejected() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) async fn run(address: &str, file: &Path) -> anyhow::Result<Report> {
    let client = Client::connect(address, ConnectOptions::default()).await?;
    Ok(htcds::import_file(&client, file, &ImportOptions::default()).await?)
}
