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

/// `waymark keys encryption` and `waymark keys manifest`: an authority signs
/// a manifest from public keys only; a node's check accepts it, with the
/// encryption key listed; a malformed member is refused before signing.
#[test]
fn keys_make_a_signed_manifest_with_encryption_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = waymark().args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let public = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("public: "))
            .unwrap()
            .to_owned()
    };
    assert!(run(&["keys", "generate", "--out", &path("authority.key")]).0);
    assert!(run(&["keys", "generate", "--out", &path("police.key")]).0);
    let (ok, enc, _) = run(&["keys", "encryption", "--out", &path("police.x25519")]);
    assert!(ok);
    assert!(enc.starts_with("key-id: x25519:"), "{enc}");
    let (_, shown, _) = run(&["keys", "show", &path("police.x25519")]);
    assert_eq!(shown, enc, "show reads an encryption key file too");
    let (_, signing, _) = run(&["keys", "show", &path("police.key")]);
    let member = format!(
        "bg-police-sofia,police,BG,{},{}",
        public(&signing),
        public(&enc)
    );
    let (ok, out, err) = run(&[
        "keys",
        "manifest",
        "--authority",
        &path("authority.key"),
        "--federation",
        "test-nrm",
        "--member",
        &member,
        "--out",
        &path("federation.toml"),
    ]);
    assert!(ok, "{out}{err}");
    let authority =
        waymark_crypto::AgencyKey::load(std::path::Path::new(&path("authority.key"))).unwrap();
    let v = waymark_crypto::manifest::load_verified(
        std::path::Path::new(&path("federation.toml")),
        &authority.public_key(),
    )
    .unwrap();
    assert_eq!(v.members.len(), 1);
    assert_eq!(
        hex::encode(v.members[0].encryption_keys[0].public),
        public(&enc)
    );

    let (ok, _, err) = run(&[
        "keys",
        "manifest",
        "--authority",
        &path("authority.key"),
        "--member",
        "bg-police-sofia,police,BG,nothex",
        "--out",
        &path("bad.toml"),
    ]);
    assert!(!ok);
    assert!(err.contains("signing key"), "{err}");
    assert!(!dir.path().join("bad.toml").exists());
}

/// `waymark bench --quick` runs the end-to-end figures against real agency
/// processes and the raw baseline (a smoke run: figures not meaningful in a
/// debug build, but the harness must work: it once failed on the broker's
/// per-agency permissions and nothing noticed).
#[test]
fn bench_quick_runs_p1_and_p2_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = waymark()
        .args(["bench", "--quick", "--only", "P1,P2", "--json", "--out"])
        .arg(dir.path().join("b.md"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = figures
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "P1; P2 p50, p99 against the raw round trip, then against one hop: {names:?}"
    );
    assert!(names[0].contains("end-to-end events/s"), "{names:?}");
    assert!(names[2].contains("p99"), "{names:?}");
    assert_eq!(figures[2]["target"]["kind"], "ratio_at_most", "{figures}");
    assert!(
        names[4].contains("p99") && names[4].contains("one broker hop"),
        "{names:?}"
    );
    for f in figures.as_array().unwrap() {
        assert!(f["ours"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["baseline"].as_f64().unwrap() > 0.0, "{f}");
    }
}
