//! P5: resident memory of a police agency process whose journal holds
//! 1,000,000 entries, next to the same process with an empty journal.
//!
//! # Method
//! 1. A one-agency federation (nats-server and one `waymark serve --kind
//!    police` process, production settings) starts on an empty journal;
//!    once healthy it serves a few calls (ListCases, OpenCase, GetCase) and
//!    its memory is sampled: the baseline.
//! 2. It is stopped, and the journal is filled offline through the journal
//!    API, as the agency itself would write it: events signed with the
//!    agency's own key (a `CaseOpened` then nine `SignalReceived` per case,
//!    100,000 cases), appended by 128 threads so group commit makes big
//!    batches; a checkpoint every 10,000 entries. The time is reported.
//! 3. The same process starts again on that journal (its follower catches
//!    up on the million entries it did not see: the start-up rebuild),
//!    serves the same calls, and its memory is sampled every 500 ms for a
//!    while. The figure is the peak resident set (`VmHWM` from
//!    `/proc/<pid>/status`, which also covers start-up); `VmRSS` at the end
//!    and the journal's size on disk are in the note.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_federation::demo::api::{Agency, key};
use waymark_federation::{Federation, LaunchOptions, Layout, SAMPLE};
use waymark_journal::{Journal, JournalConfig, SledConfig, SledStore};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::{Figure, Options, Target};

/// The target, MB of resident memory.
pub const TARGET_MB: f64 = 200.0;
const POLICE: &str = "bg-police-sofia";
/// Events per case in the filled journal.
const EVENTS_PER_CASE: u64 = 10;
/// Appending threads (bigger group-commit batches).
const FILLERS: u64 = 128;

/// Memory figures of one process, in MB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// Largest `VmRSS` sampled.
    pub rss_max: f64,
    /// `VmRSS` at the end.
    pub rss_end: f64,
    /// `VmHWM`: the peak resident set since the process started.
    pub hwm: f64,
}

/// Runs P5.
///
/// # Errors
/// If a process does not start or a call fails.
pub async fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Figure>> {
    let entries = opts.pick(opts.p5_entries, opts.p5_entries.min(20_000));
    let sample_for = opts.secs(10.0, 2.0);
    let dir = tempfile::tempdir().context("creating the federation directory")?;
    let mut lo = LaunchOptions::sample(dir.path(), opts.program.clone());
    lo.members = SAMPLE.iter().filter(|m| m.id == POLICE).copied().collect();
    lo.log_filter = "warn".to_owned();

    progress("P5: police process on an empty journal");
    let empty = measure(lo.clone(), sample_for).await?;

    progress(&format!("P5: writing {entries} journal entries"));
    let layout = Layout::new(dir.path());
    let agency_key = AgencyKey::load(&layout.signing_key(POLICE))?;
    let journal_dir = layout.journal(POLICE);
    let t = Instant::now();
    let jd = journal_dir.clone();
    tokio::task::spawn_blocking(move || fill(&jd, &agency_key, entries)).await??;
    let fill_secs = t.elapsed().as_secs_f64();
    let disk = disk_bytes(&journal_dir);

    progress(&format!("P5: police process on {entries} entries"));
    let t = Instant::now();
    let full = measure(lo, sample_for).await?;
    let start_secs = t.elapsed().as_secs_f64();
    let note = format!(
        "peak RSS (VmHWM); VmRSS at end {:.0} MB (empty: {:.0} MB); journal {:.0} MB on disk, \
         written in {fill_secs:.0} s ({:.0} entries/s); start-up to healthy and measured {start_secs:.0} s",
        full.rss_end,
        empty.rss_end,
        disk as f64 / 1e6,
        entries as f64 / fill_secs,
    );
    Ok(vec![Figure::from_rounds(
        "P5",
        format!("resident memory of a police agency process, {entries} journal entries"),
        "MB",
        &[full.hwm],
        &[empty.hwm],
        "the same process, empty journal",
        Target::OursAtMost(TARGET_MB),
        note,
    )])
}

/// Starts the federation, waits healthy, makes the calls, samples memory,
/// stops it.
async fn measure(lo: LaunchOptions, sample_for: Duration) -> anyhow::Result<Rss> {
    let fed = Federation::start(lo).await?;
    let out = calls_and_sample(&fed, sample_for).await;
    fed.stop().await.ok();
    out
}

async fn calls_and_sample(fed: &Federation, sample_for: Duration) -> anyhow::Result<Rss> {
    let police = fed
        .endpoints()
        .get(POLICE)
        .map(Agency::new)
        .context("police is not running")?;
    let pid = fed.pid(POLICE).context("police has no process id")?;
    let listed = police
        .case()
        .list_cases(pb::ListCasesRequest::default())
        .await
        .context("ListCases")?
        .into_inner();
    police
        .case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: pb::IdentificationChannel::Hotline as i32,
            presumed_child: false,
            forms: vec![pb::ExploitationForm::Labour as i32],
            anonymous: true,
            personal: None,
        })
        .await
        .context("OpenCase")?;
    if let Some(c) = listed.cases.first() {
        police
            .case()
            .get_case(pb::GetCaseRequest {
                case_id: c.case_id.clone(),
            })
            .await
            .context("GetCase")?;
    }
    let mut rss = Rss::default();
    let until = Instant::now() + sample_for;
    loop {
        let (now, hwm) = status_mb(pid)?;
        rss.rss_max = rss.rss_max.max(now);
        rss.rss_end = now;
        rss.hwm = hwm;
        if Instant::now() >= until {
            return Ok(rss);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in MB.
fn status_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing in /proc/{pid}/status"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} malformed"))?;
        Ok(kb * 1024.0 / 1e6)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Appends `n` signed police events to the journal in `dir`.
fn fill(dir: &Path, key: &AgencyKey, n: u64) -> anyhow::Result<()> {
    let store = SledStore::open(dir, &SledConfig::default())?;
    let me = AgencyId::new(POLICE)?;
    let journal = Journal::open(store, JournalConfig::new(me), Some(key.clone()))?;
    let next = AtomicU64::new(0);
    let failed = std::sync::Mutex::new(None::<anyhow::Error>);
    let cases: Vec<CaseId> = (0..n.div_ceil(EVENTS_PER_CASE))
        .map(|_| CaseId::new())
        .collect();
    std::thread::scope(|s| {
        for _ in 0..FILLERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let r = append_one(&journal, key, &cases, i);
                    if let Err(e) = r {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        next.store(n, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    journal.checkpoint_now(Timestamp::now())?;
    Ok(())
}

fn append_one(
    journal: &Journal<SledStore>,
    key: &AgencyKey,
    cases: &[CaseId],
    i: u64,
) -> anyhow::Result<()> {
    use pb::event::Body as B;
    let case = cases[usize::try_from(i / EVENTS_PER_CASE)?];
    let body = if i.is_multiple_of(EVENTS_PER_CASE) {
        B::CaseOpened(pb::CaseOpened {
            channel: pb::IdentificationChannel::LabourInspection as i32,
            presumed_child: false,
            forms: vec![pb::ExploitationForm::Labour as i32],
            anonymous: false,
        })
    } else {
        B::SignalReceived(pb::SignalReceived {
            channel: pb::IdentificationChannel::LabourInspection as i32,
            indicators: vec!["ilo.debt_bondage".into()],
            forms: vec![pb::ExploitationForm::Labour as i32],
        })
    };
    let ev = pb::Event {
        event_id: EventId::new().to_string(),
        case_id: case.to_string(),
        sender_id: POLICE.to_owned(),
        sender_kind: pb::AgencyKind::Police as i32,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: "coe-cets197@1".to_owned(),
        body: Some(body),
        ..Default::default()
    };
    let env = sign_envelope(key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec();
    journal.append_originated(&env, Timestamp::now())?;
    if (i + 1).is_multiple_of(10_000) {
        journal.checkpoint_now(Timestamp::now())?;
    }
    Ok(())
}

/// Bytes allocated on disk under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
