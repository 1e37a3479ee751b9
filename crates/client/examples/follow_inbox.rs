//! Follows an agency's inbox: prints every item other agencies sent it,
//! keeping the cursor in a file so a restart resumes where it stopped
//! (nothing lost, nothing twice past the cursor). Ctrl-C commits and stops.
//!
//! ```text
//! cargo run -p waymark-client --example follow_inbox -- \
//!     http://127.0.0.1:PORT_OF_bg-shelter-sofia shelter.cursor [MAX_ITEMS]
//! ```

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use waymark_client::proto::v1 as pb;
use waymark_client::{Client, ConnectOptions, InboxFollower};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, cursor, max) = match args.as_slice() {
        [a, c] => (a, c, None),
        [a, c, n] => (a, c, Some(n.parse().context("MAX_ITEMS must be a number")?)),
        _ => bail!("usage: follow_inbox ADDRESS CURSOR_FILE [MAX_ITEMS]"),
    };
    let stdout = std::io::stdout();
    run(address, Path::new(cursor), max, |item| {
        let mut out = stdout.lock();
        writeln!(out, "{}", line(item))?;
        out.flush()?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// One line per item: cursor, event kind, event id, sender.
pub(crate) fn line(item: &pb::SubscribeResponse) -> String {
    match &item.event {
        Some(e) => format!(
            "{:>6} {:<28} {} from {}",
            item.cursor,
            kind(e),
            e.event_id,
            e.sender_id
        ),
        None => format!("{:>6} quarantined input", item.cursor),
    }
}

/// The event's kind, e.g. `ReferralRequested`.
pub(crate) fn kind(e: &pb::Event) -> String {
    e.body
        .as_ref()
        .map(|b| format!("{b:?}"))
        .and_then(|s| s.split('(').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Follows the inbox at `address` from the cursor in `cursor_file`, calling
/// `handle` for each item, until `max` items (or Ctrl-C); returns the items'
/// cursors.
pub(crate) async fn run(
    address: &str,
    cursor_file: &Path,
    max: Option<usize>,
    mut handle: impl FnMut(&pb::SubscribeResponse) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u64>> {
    let client = Client::connect_lazy(address, ConnectOptions::default())?;
    let mut inbox = InboxFollower::open(client, cursor_file)?;
    let mut seen = Vec::new();
    while max.is_none_or(|m| seen.len() < m) {
        let item = tokio::select! {
            item = inbox.next() => item?,
            _ = tokio::signal::ctrl_c() => break,
        };
        handle(&item)?;
        seen.push(item.cursor);
    }
    // The last item was handled: store its cursor before stopping.
    inbox.commit().await?;
    Ok(seen)
}
