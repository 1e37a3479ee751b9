//! The demo scenario: cases driven through a running federation over gRPC,
//! the end state checked at every agency, and every journal exported over
//! `JournalService.ExportJournal` and verified from the file alone.
//!
//! The same code runs `waymark demo` and the end-to-end test in `tests/`,
//! so what the README shows is what CI checks.

pub mod api;
mod steps;
pub mod stories;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use prost::Message;
use tokio::io::AsyncWriteExt;
use waymark_crypto::{KeyRing, manifest};
use waymark_journal::{VerifySummary, verify_export};
use waymark_proto::v1 as pb;
use waymark_proto::v1::journal_service_client::JournalServiceClient;
use waymark_types::AgencyKind;

use crate::launch::Federation;
use api::Agency;
pub use stories::{Cast, Outcome, Story};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of cases (at least one of each story from 6 on).
    pub cases: usize,
    /// Cases driven at the same time.
    pub concurrency: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            cases: 20,
            concurrency: 4,
        }
    }
}

/// One verified export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The agency.
    pub agency: String,
    /// The file.
    pub path: PathBuf,
    /// What verification found.
    pub summary: VerifySummary,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Every case, in order.
    pub outcomes: Vec<Outcome>,
    /// Every agency's export, verified.
    pub exports: Vec<Export>,
}

/// Progress callbacks (the CLI draws a bar; tests ignore them).
pub trait Progress: Send + Sync {
    /// A case finished.
    fn case_done(&self, done: usize, total: usize, outcome: &Outcome);
    /// A phase starts.
    fn phase(&self, what: &str);
}

/// Progress that shows nothing.
#[derive(Debug, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn case_done(&self, _: usize, _: usize, _: &Outcome) {}
    fn phase(&self, _: &str) {}
}

/// The sample federation's agencies by role.
///
/// # Errors
/// If a role has no agency.
pub fn cast(fed: &Federation) -> anyhow::Result<Cast> {
    let e = fed.endpoints();
    let by_kind = |k: AgencyKind| -> Vec<Agency> {
        e.values()
            .filter(|x| x.kind == k)
            .map(Agency::new)
            .collect()
    };
    let one = |k: AgencyKind| {
        by_kind(k)
            .into_iter()
            .next()
            .with_context(|| format!("the federation has no {k} agency"))
    };
    let shelters = by_kind(AgencyKind::Shelter);
    // In id order: the first is full, the second has places.
    let [full, with_places] = <[Agency; 2]>::try_from(shelters).map_err(|s| {
        anyhow::anyhow!(
            "the demo needs two shelters, the federation has {}",
            s.len()
        )
    })?;
    Ok(Cast {
        police: one(AgencyKind::Police)?,
        shelter_full: full,
        shelter: with_places,
        ngo: one(AgencyKind::Ngo)?,
        returndesk: one(AgencyKind::ReturnDesk)?,
        labour: one(AgencyKind::Labour)?,
    })
}

/// Runs the scenario on `fed`, checks every case at every agency, waits
/// for the journals to settle, exports and verifies each.
///
/// # Errors
/// The first story that fails, or a check or export that fails.
pub async fn run(
    fed: &Federation,
    opts: &DemoOptions,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<DemoReport> {
    let cast = Arc::new(cast(fed)?);
    progress.phase("preparing the shelters");
    stories::setup(&cast).await?;
    progress.phase("driving the cases");
    let total = opts.cases;
    let mut done = 0;
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut running = futures::stream::iter((0..total).map(|i| {
        let cast = cast.clone();
        async move {
            let story = Story::of(i);
            let o = stories::run(&cast, story)
                .await
                .with_context(|| format!("case {} ({story:?})", i + 1))?;
            Ok::<_, anyhow::Error>((i, o))
        }
    }))
    .buffer_unordered(opts.concurrency.max(1));
    while let Some(r) = running.next().await {
        let (i, o) = r?;
        done += 1;
        progress.case_done(done, total, &o);
        outcomes.insert(i, o);
    }
    drop(running);
    progress.phase("checking every case at every agency");
    for o in outcomes.values() {
        stories::check(&cast, o).await?;
    }
    progress.phase("waiting for the journals to settle (checkpoints and cosignatures)");
    settle(&cast).await?;
    progress.phase("exporting and verifying every journal");
    let exports = export_all(fed, &cast).await?;
    Ok(DemoReport {
        outcomes: outcomes.into_values().collect(),
        exports,
    })
}

async fn latest(a: &Agency) -> anyhow::Result<(u64, usize)> {
    let r = JournalServiceClient::new(a.channel())
        .get_latest_checkpoint(pb::GetLatestCheckpointRequest {})
        .await?
        .into_inner();
    let Some(w) = r.checkpoint else {
        return Ok((0, 0));
    };
    let env = w.checkpoint.context("checkpoint without envelope")?;
    let cp = pb::Checkpoint::decode(env.payload.as_slice())?;
    Ok((cp.size, w.cosignatures.len()))
}

/// Waits until every journal's newest checkpoint stopped growing over two
/// polls a few seconds apart and carries cosignatures: deliveries, receipts
/// and witnessing are done.
async fn settle(c: &Cast) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut before: Vec<(u64, usize)> = Vec::new();
    loop {
        let mut now = Vec::new();
        for a in c.all() {
            now.push(latest(a).await?);
        }
        let witnessed = now.iter().all(|(size, cos)| *size > 0 && *cos > 0);
        if witnessed && now == before {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the journals did not settle within 120 s: {now:?}");
        }
        before = now;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

async fn export_all(fed: &Federation, c: &Cast) -> anyhow::Result<Vec<Export>> {
    let layout = fed.layout();
    let dir = layout.exports();
    tokio::fs::create_dir_all(&dir).await?;
    let authority = waymark_crypto::AgencyKey::load(&layout.authority_key())?;
    let v = manifest::load_verified(&layout.manifest(), &authority.public_key())?;
    let mut ring = KeyRing::new();
    for m in &v.members {
        for k in &m.keys {
            ring.insert(k.clone());
        }
    }
    let ring = Arc::new(ring);
    let mut out = Vec::new();
    for a in c.all() {
        let path = dir.join(format!("{}.wmj", a.id));
        let mut stream = JournalServiceClient::new(a.channel())
            .export_journal(pb::ExportJournalRequest { from_seq: 0 })
            .await
            .with_context(|| format!("ExportJournal at {}", a.id))?
            .into_inner();
        let mut f = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?.chunk).await?;
        }
        f.sync_all().await?;
        let (p, r) = (path.clone(), ring.clone());
        let summary = tokio::task::spawn_blocking(move || {
            verify_export(BufReader::new(std::fs::File::open(&p)?), &r)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        })
        .await??;
        out.push(Export {
            agency: a.id.clone(),
            path,
            summary,
        });
    }
    Ok(out)
}
