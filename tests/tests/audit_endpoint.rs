//! `waymark audit --endpoint` against live agencies: the demo scenario runs
//! on six real agency processes and a real nats-server, then the auditor
//! reads every journal over `JournalService.ExportJournal` and audits it.
//!
//! - The audit is clean and covers every agency, each journal attributed to
//!   the agency whose endpoint served it.
//! - The exports it saved audit offline as files to exactly the same report
//!   (same bytes, same journals, roots, counts and findings).
//! - The file audit of the exports the demo wrote a moment earlier agrees
//!   on every event and finding. The journals keep growing after the demo
//!   (agencies witness each other's checkpoints, which adds entries and
//!   then checkpoints), so entry counts and roots move on; each agency
//!   proves over gRPC that the demo's export is a prefix of what the
//!   endpoint audit read (a Merkle consistency proof between the two roots).
//! - A directory and endpoints together (half the agencies each way, read
//!   at different moments) audit clean with the same events; two copies of
//!   one agency are reported whichever way they arrived.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use waymark_audit::{AuditOptions, Report, Source, audit};
use waymark_federation::demo::{self, DemoOptions, Quiet};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions};
use waymark_journal::merkle::verify_consistency;
use waymark_proto::v1 as pb;
use waymark_proto::v1::journal_service_client::JournalServiceClient;
use waymark_testkit::TestDir;

fn options(dir: &Path) -> LaunchOptions {
    let mut o = LaunchOptions::sample(
        dir,
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    o.checkpoint_interval = Duration::from_millis(500);
    o
}

/// The audit off the async runtime (it blocks: threads and file I/O).
async fn run_audit(sources: Vec<Source>, save: Option<&Path>) -> Report {
    let opts = AuditOptions {
        save_exports: save.map(Path::to_owned),
        ..AuditOptions::default()
    };
    tokio::task::spawn_blocking(move || audit(&sources, &opts))
        .await
        .unwrap()
        .unwrap()
}

/// What two audits of the same events agree on even when the journals grew
/// by witnessing in between: per agency whether it verified and its event
/// counts, the replay's totals, and the findings.
fn events(r: &Report) -> (BTreeMap<String, [u64; 4]>, [u64; 2], String) {
    let journals = r
        .journals
        .iter()
        .map(|j| {
            let v = [
                u64::from(j.verified),
                j.originated,
                j.received,
                j.quarantined,
            ];
            (j.agency.clone(), v)
        })
        .collect();
    (
        journals,
        [r.totals.events_applied, r.totals.cases],
        serde_json::to_string(&r.findings).unwrap(),
    )
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Everything two audits of the same bytes must agree on: per agency the
/// journal summary without where it was read from, the totals, the findings.
fn evidence(r: &Report) -> (BTreeMap<String, String>, String, String) {
    let journals = r
        .journals
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j.file.clear();
            j.endpoint = None;
            (j.agency.clone(), serde_json::to_string(&j).unwrap())
        })
        .collect();
    (
        journals,
        serde_json::to_string(&r.totals).unwrap(),
        serde_json::to_string(&r.findings).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_over_grpc_agrees_with_the_file_audit() {
    let dir = TestDir::new("audit-endpoint").unwrap();
    let fed = Federation::start(options(dir.path())).await.unwrap();
    let opts = DemoOptions {
        cases: 12,
        concurrency: 4,
    };
    let demo = demo::run(&fed, &opts, Arc::new(Quiet)).await.unwrap();
    let urls: BTreeMap<String, String> = fed
        .endpoints()
        .iter()
        .map(|(id, e)| (id.clone(), e.url()))
        .collect();
    assert_eq!(urls.len(), 6, "one process per agency");
    let endpoints: Vec<Source> = urls.values().cloned().map(Source::Endpoint).collect();

    // Over gRPC, saving what was read.
    let saved = dir.path().join("fetched");
    let live = run_audit(endpoints.clone(), Some(&saved)).await;
    assert!(
        live.clean && live.findings.is_empty(),
        "the endpoint audit is clean:\n{}",
        live.to_json().unwrap()
    );
    assert_eq!(live.journals.len(), 6);
    for j in &live.journals {
        assert!(j.verified, "{} verified", j.agency);
        assert!(j.entries > 0 && j.checkpoints > 0 && j.cosignatures > 0);
        assert_eq!(
            j.endpoint.as_ref(),
            urls.get(&j.agency),
            "{}'s journal came from its own endpoint",
            j.agency
        );
        assert_eq!(j.file, format!("{}.wmj", j.agency), "saved under its name");
    }
    assert!(live.totals.cases >= demo.outcomes.len() as u64);
    assert_eq!(live.sources, urls.values().cloned().collect::<Vec<_>>());
    assert_eq!(live.directory, "");

    // Offline, from the saved bytes: the very same audit.
    let offline = run_audit(vec![Source::Dir(saved.clone())], None).await;
    assert_eq!(
        evidence(&offline),
        evidence(&live),
        "same bytes, same audit"
    );

    // The file audit of the demo's own exports (written over the same RPC
    // moments earlier, after the journals settled) agrees on every event.
    let exports = fed.layout().exports();
    let files = run_audit(vec![Source::Dir(exports.clone())], None).await;
    assert!(files.clean, "{}", files.to_json().unwrap());
    assert_eq!(
        events(&files),
        events(&live),
        "file and endpoint audits agree"
    );
    for (f, l) in files.journals.iter().zip(&live.journals) {
        assert_eq!(f.agency, l.agency);
        assert!(f.entries <= l.entries, "{} lost entries", f.agency);
        let proof = JournalServiceClient::new(fed.endpoints()[&f.agency].channel.clone())
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: f.entries,
                new_size: l.entries,
            })
            .await
            .unwrap()
            .into_inner()
            .proof
            .unwrap();
        verify_consistency(
            f.entries,
            l.entries,
            &unhex(&f.root),
            &unhex(&l.root),
            &proof.hashes,
        )
        .unwrap_or_else(|e| panic!("{}: the demo's export is not a prefix: {e}", f.agency));
    }

    // A directory and endpoints together: half the agencies each way.
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    let ids: Vec<&String> = urls.keys().collect();
    let mut mixed = vec![Source::Dir(half.clone())];
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            let name = format!("{id}.wmj");
            std::fs::copy(exports.join(&name), half.join(&name)).unwrap();
        } else {
            mixed.push(Source::Endpoint(urls[*id].clone()));
        }
    }
    let both = run_audit(mixed, None).await;
    assert!(both.clean, "{}", both.to_json().unwrap());
    assert_eq!(events(&both), events(&files), "mixed sources agree");
    assert_eq!(
        both.journals
            .iter()
            .filter(|j| j.endpoint.is_some())
            .count(),
        3
    );

    // Two copies of one agency are reported, whichever way they arrived.
    let first = ids[0];
    let twice = run_audit(
        vec![
            Source::Dir(half.clone()),
            Source::Endpoint(urls[first].clone()),
        ],
        None,
    )
    .await;
    assert!(!twice.clean);
    assert!(
        twice
            .findings
            .iter()
            .any(|f| f.rule == "journal.duplicate_agency" && f.location.agency == *first),
        "{}",
        twice.to_json().unwrap()
    );

    fed.stop().await.unwrap();
}
