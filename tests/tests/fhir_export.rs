//! FHIR and Kantara exports of a real federation run: the demo scenario
//! (one case of each story) across six real agency processes on a real
//! nats-server, every journal exported over gRPC and verified; then every
//! case's history is exported as a FHIR R5 Bundle from those exports and
//! every resource is validated with the fhir.resources package (pinned in
//! `.ci/python/requirements.txt`), and every consent gets a Kantara receipt.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use waymark_federation::demo::{self, DemoOptions, Quiet, Story};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions};
use waymark_interop::kantara::{ReceiptOptions, receipt};
use waymark_interop::{Exports, fhir};
use waymark_testkit::{TestDir, workspace_root};
use waymark_types::CaseId;

fn python() -> std::path::PathBuf {
    let p = workspace_root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/install-python` (the README's test command does)",
        p.display()
    );
    p
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn handovers(bundle: &Value) -> Vec<&Value> {
    of_type(bundle, "Task")
        .into_iter()
        .filter(|t| t["code"]["coding"][0]["code"] == "handover")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_cases_export_as_valid_fhir_r5_and_consent_receipts() {
    let py = python();
    let dir = TestDir::new("fhir-export").unwrap();
    let mut opts = LaunchOptions::sample(
        dir.path(),
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.checkpoint_interval = Duration::from_millis(500);
    let fed = Federation::start(opts).await.unwrap();
    let run = demo::run(
        &fed,
        &DemoOptions {
            cases: 6,
            concurrency: 3,
        },
        Arc::new(Quiet),
    )
    .await;
    fed.stop().await.unwrap();
    let report = run.unwrap();
    assert_eq!(report.exports.len(), 6);

    let exports = Exports::open_dir(&dir.path().join("exports")).unwrap();
    let out = dir.path().join("fhir");
    std::fs::create_dir_all(&out).unwrap();
    let mut files = Vec::new();
    let mut bundles: BTreeMap<String, Value> = BTreeMap::new();
    for o in &report.outcomes {
        let case = CaseId::parse(&o.case).unwrap();
        let record = exports.case(&case).unwrap();
        assert!(
            record.skipped.is_empty(),
            "case {}: {:#?}",
            o.case,
            record.skipped
        );
        let json = fhir::case_bundle(&record).to_json().unwrap();
        // Deterministic: the same exports give the same bytes.
        assert_eq!(
            json,
            fhir::case_bundle(&exports.case(&case).unwrap())
                .to_json()
                .unwrap()
        );
        let path = out.join(format!("{}.json", o.case));
        std::fs::write(&path, &json).unwrap();
        files.push(path);

        // A Kantara receipt for every consent of the case.
        for c in of_type(&serde_json::from_str(&json).unwrap(), "Consent") {
            let id = c["id"].as_str().unwrap();
            let r = receipt(&record, id, &ReceiptOptions::default()).unwrap();
            let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
            assert_eq!(v["version"], "KI-CR-v1.1.0");
            assert_eq!(v["piiPrincipalId"], o.case.as_str());
            assert_eq!(v["consentReceiptID"], id);
            assert_eq!(v["sensitive"], true);
            assert!(!v["services"][0]["purposes"].as_array().unwrap().is_empty());
        }
        bundles.insert(o.case.clone(), serde_json::from_str(&json).unwrap());
    }

    // Every resource of every bundle, checked by fhir.resources (R5).
    let check = Command::new(&py)
        .arg(workspace_root().join("crates/interop/tests/validate_fhir.py"))
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "fhir.resources rejects an exported bundle ({}):\n{}\n{stdout}",
        check.status,
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(stdout.lines().count(), report.outcomes.len(), "{stdout}");

    // What each story must show.
    for o in &report.outcomes {
        let b = &bundles[&o.case];
        let hs = handovers(b);
        // The custodian after the last accepted handover is the one the
        // agencies agree on.
        let mut accepted: Vec<_> = hs.iter().filter(|t| t["status"] == "completed").collect();
        accepted.sort_by_key(|t| t["lastModified"].as_str().unwrap().to_owned());
        if let Some(last) = accepted.last() {
            assert_eq!(
                last["owner"]["identifier"]["value"],
                o.custodian.as_str(),
                "{:?} case {}",
                o.story,
                o.case
            );
        }
        match o.story {
            Story::Reoffered => {
                assert!(hs.iter().any(|t| t["status"] == "rejected"), "{b}");
                assert!(!accepted.is_empty());
            }
            Story::Withdrawal => {
                assert!(
                    of_type(b, "Consent")
                        .iter()
                        .any(|c| c["status"] == "inactive"),
                    "the withdrawn consent is inactive"
                );
            }
            Story::AdultReturn | Story::Child => {
                assert!(!accepted.is_empty(), "{:?}: custody moved", o.story);
                assert!(!of_type(b, "Consent").is_empty());
                assert!(!of_type(b, "ServiceRequest").is_empty() || o.story == Story::AdultReturn);
            }
            // Kept in one journal: nothing was shared, so nothing maps
            // (the crate docs' "Not mapped").
            Story::Refusal | Story::AnonymousHotline => {}
        }
        if !matches!(o.story, Story::Refusal | Story::AnonymousHotline) {
            assert!(!of_type(b, "Provenance").is_empty(), "{:?}", o.story);
            assert!(!of_type(b, "AuditEvent").is_empty(), "{:?}", o.story);
            assert!(!of_type(b, "Organization").is_empty(), "{:?}", o.story);
        }
    }
}
