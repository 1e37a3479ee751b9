//! Runs the real `waymark` binary.

use std::process::Command;

fn waymark() -> Command {
    Command::new(env!("CARGO_BIN_EXE_waymark"))
}

#[test]
fn demo_drives_cases_and_every_export_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = waymark()
        .args(["demo", "--cases", "6", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every case checked at every agency"),
        "{stdout}"
    );
    // The stories provoke each of these refusals on purpose; each is shown.
    for rule in [
        "refusal.disclosure_refused",
        "treaty.art16_7_child_best_interests",
        "consent.withdrawn",
    ] {
        assert!(stdout.contains(rule), "missing {rule} in:\n{stdout}");
    }
    for agency in [
        "bg-police-sofia",
        "bg-shelter-sofia",
        "bg-shelter-varna",
        "bg-ngo-outreach",
        "iom-return-sofia",
        "bg-labour-ministry",
    ] {
        assert!(stdout.contains(agency), "{agency} not listed:\n{stdout}");
        let export = data.join("exports").join(format!("{agency}.wmj"));
        let bytes = std::fs::read(&export).unwrap();
        assert!(
            bytes.starts_with(b"WMJRNL01"),
            "{} is not an export",
            export.display()
        );
    }
}

#[test]
fn keys_generate_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("police.key");
    let first = waymark()
        .args(["keys", "generate", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(first.status.success());
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert!(id.starts_with("ed25519:") && id.len() == 40, "{id}");

    let show = waymark().args(["keys", "show"]).arg(&key).output().unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains(&id));

    let second = waymark()
        .args(["keys", "generate", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("exists"));
}
