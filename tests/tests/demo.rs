//! The demo scenario end to end: the sample federation as six real agency
//! processes (every kind, two shelters) on a real nats-server, driven over
//! gRPC. Every case is checked at every agency (the custodian the parties
//! agree on; no agency knows a case it was not told about), every journal is
//! exported over gRPC and verifies, the auditor finds the exports clean, and
//! after a restart of the whole federation on the same directory every case
//! is still where it was.

use std::sync::Arc;
use std::time::Duration;

use waymark_audit::{AuditOptions, audit_dir};
use waymark_federation::demo::{self, DemoOptions, Quiet, Story, stories};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions};
use waymark_testkit::TestDir;

fn options(dir: &std::path::Path) -> LaunchOptions {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_across_real_agency_processes() {
    let dir = TestDir::new("demo-e2e").unwrap();
    let fed = Federation::start(options(dir.path())).await.unwrap();
    assert_eq!(fed.endpoints().len(), 6, "one process per agency");
    let opts = DemoOptions {
        cases: 20,
        concurrency: 4,
    };
    let report = demo::run(&fed, &opts, Arc::new(Quiet)).await;
    let cast = demo::cast(&fed).unwrap();
    fed.stop().await.unwrap();
    let report = report.unwrap();

    assert_eq!(report.outcomes.len(), 20);
    for story in [
        Story::AdultReturn,
        Story::Reoffered,
        Story::Child,
        Story::Withdrawal,
        Story::Refusal,
        Story::AnonymousHotline,
    ] {
        let of: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.story == story)
            .collect();
        assert!(of.len() >= 3, "{story:?} ran {} times", of.len());
        let want: &[&str] = match story {
            Story::Child => &["treaty.art16_7_child_best_interests"],
            Story::Withdrawal => &["consent.withdrawn"],
            Story::Refusal => &["refusal.disclosure_refused"],
            _ => &[],
        };
        for o in of {
            assert_eq!(o.refusals, want, "{story:?} case {}", o.case);
        }
    }
    assert_eq!(report.exports.len(), 6);
    for e in &report.exports {
        assert!(e.summary.entries > 0, "{} exported nothing", e.agency);
        assert!(e.summary.checkpoints > 0, "{} has no checkpoint", e.agency);
    }

    let exports = dir.path().join("exports");
    let audit = audit_dir(&exports, &AuditOptions::default()).unwrap();
    assert!(
        audit.clean,
        "the auditor finds the demo exports clean:\n{}",
        audit.to_json().unwrap()
    );
    // Again with the keys pinned to the federation's signed manifest, as an
    // auditor holding the authority's public key would: still clean.
    let layout = waymark_federation::Layout::new(dir.path());
    let authority = waymark_crypto::AgencyKey::load(&layout.authority_key()).unwrap();
    let manifest =
        waymark_crypto::manifest::load_verified(&layout.manifest(), &authority.public_key())
            .unwrap();
    let pinned = audit_dir(
        &exports,
        &AuditOptions {
            manifest: Some(manifest),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    assert!(
        pinned.clean,
        "the demo exports are clean against the manifest:\n{}",
        pinned.to_json().unwrap()
    );

    // The same federation again: identity reused, every case where it was.
    let fed = Federation::start(options(dir.path())).await.unwrap();
    let again = demo::cast(&fed).unwrap();
    assert_eq!(again.police.id, cast.police.id);
    for o in &report.outcomes {
        stories::check(&again, o).await.unwrap();
    }
    fed.stop().await.unwrap();
}
