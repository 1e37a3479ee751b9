//! A Python client generated from `proto/` with grpcio-tools (pinned in
//! `.ci/python/requirements.txt`, installed by `bash .ci/install-python`)
//! opens a case at a real police agency process and refers it to a shelter;
//! the referral then shows at the shelter. Proves the API works outside Rust.

use std::process::Command;
use std::time::Duration;

use waymark_federation::demo::api::{Agency, eventually, referral_state};
use waymark_federation::{AgencyProgram, Federation, LaunchOptions, SAMPLE};
use waymark_proto::v1 as pb;
use waymark_testkit::{TestDir, workspace_root};
use waymark_types::AgencyKind;

fn python() -> std::path::PathBuf {
    let p = workspace_root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/install-python` (the README's test command does)",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_opens_and_refers_a_case() {
    let py = python();
    let dir = TestDir::new("python-client").unwrap();
    let mut opts = LaunchOptions::sample(
        dir.path(),
        AgencyProgram {
            program: env!("CARGO_BIN_EXE_waymark-test-agency").into(),
            args: vec![],
        },
    );
    opts.members = SAMPLE
        .iter()
        .filter(|a| matches!(a.kind, AgencyKind::Police | AgencyKind::Shelter))
        .copied()
        .collect();
    let fed = Federation::start(opts).await.unwrap();
    let police = fed
        .endpoints()
        .values()
        .find(|e| e.kind == AgencyKind::Police)
        .unwrap();
    let shelter = Agency::new(
        fed.endpoints()
            .values()
            .find(|e| e.kind == AgencyKind::Shelter)
            .unwrap(),
    );
    let out_dir = dir.path().join("py");
    std::fs::create_dir_all(&out_dir).unwrap();
    let run = Command::new(&py)
        .arg(workspace_root().join("tests/python/client.py"))
        .arg(workspace_root().join("proto"))
        .arg(&out_dir)
        .arg(police.addr.to_string())
        .arg(&shelter.id)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "python client failed: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let case = v["case_id"].as_str().unwrap().to_owned();
    let referral = v["referral_id"].as_str().unwrap().to_owned();
    assert!(
        v["bad_request"]
            .as_str()
            .unwrap()
            .contains("idempotency_key"),
        "the INVALID_ARGUMENT names the field: {v}"
    );

    // The performer sees it as requested until it marks it received.
    eventually(
        Duration::from_secs(60),
        "the shelter lists the referral",
        || async {
            Ok(referral_state(&shelter, &case, &referral).await?
                == Some(pb::ReferralState::Requested))
        },
    )
    .await
    .unwrap();
    fed.stop().await.unwrap();
}
