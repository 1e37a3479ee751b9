//! The deployment files in `deploy/`, checked without Docker or a cluster:
//!
//! - `tests/python/validate_deploy.py` (pinned tools from
//!   `.ci/python/requirements.txt`): compose.yaml against the compose spec
//!   plus structure, the kustomize base rendered and validated against the
//!   Kubernetes JSON schemas, and every cross-reference (see its docstring);
//! - every agency `node.toml` parses and uses only keys the node's config
//!   schema knows (`crates/node/src/config/schema.rs`, `KEYS`) or keys listed
//!   in [`PENDING_KEYS`];
//! - the NATS configurations parse with the pinned `nats-server -t`.
//!
//! The Dockerfile cannot be built here (no Docker engine); nothing checks it
//! beyond review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use waymark_testkit::workspace_root;

/// Keys the deploy configs use that `schema.rs` does not know yet (none
/// now: `keys.encryption_key_file` landed with sealing, issue 8). Add a key
/// here only while its node support is in flight; this test then checks it
/// like any other key once it lands.
const PENDING_KEYS: &[&str] = &[];

fn python() -> PathBuf {
    let p = workspace_root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/install-python` (the README's test command does)",
        p.display()
    );
    p
}

#[test]
fn compose_and_kubernetes_manifests_validate() {
    let root = workspace_root();
    let out = Command::new(python())
        .arg(root.join("tests/python/validate_deploy.py"))
        .arg(&root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "deploy validation failed:\n{text}");
    assert!(text.contains(", 0 problems"), "{text}");
}

/// The dotted key paths `KEYS` declares in schema.rs.
fn schema_keys() -> BTreeSet<String> {
    let src =
        std::fs::read_to_string(workspace_root().join("crates/node/src/config/schema.rs")).unwrap();
    let start = src.find("const KEYS").expect("schema.rs declares KEYS");
    let end = start + src[start..].find("\n];").expect("KEYS ends");
    let mut keys = BTreeSet::new();
    let mut rest = &src[start..end];
    while let Some(i) = rest.find("key(") {
        rest = rest[i + 4..].trim_start();
        if let Some(s) = rest.strip_prefix('"') {
            let close = s.find('"').unwrap();
            keys.insert(s[..close].to_owned());
        }
    }
    assert!(keys.len() > 20, "parsed only {keys:?} from KEYS");
    keys
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn node_configs() -> Vec<PathBuf> {
    let dir = workspace_root().join("deploy/k8s/base/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn agency_configs_use_only_known_keys() {
    let known = schema_keys();
    for k in PENDING_KEYS {
        assert!(
            !known.contains(*k),
            "{k} is in schema.rs now: remove it from PENDING_KEYS"
        );
    }
    let files = node_configs();
    assert_eq!(files.len(), 5, "one node.toml per agency: {files:?}");
    let mut used_pending = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let value: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", f.display()));
        let mut keys = Vec::new();
        flatten("", &value, &mut keys);
        for k in keys {
            if PENDING_KEYS.contains(&k.as_str()) {
                used_pending.insert(k);
            } else {
                assert!(
                    known.contains(&k),
                    "{}: {k} is neither in schema.rs KEYS nor in PENDING_KEYS",
                    f.display()
                );
            }
        }
        let id = f.file_stem().unwrap().to_str().unwrap();
        assert_eq!(value["agency"]["id"].as_str(), Some(id), "{}", f.display());
    }
    let pending: BTreeSet<String> = PENDING_KEYS.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(used_pending, pending, "PENDING_KEYS lists unused keys");
}

/// Writes a throw-away CA-signed certificate set with `openssl`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=nats",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "1",
    ]);
}

#[test]
fn nats_configurations_parse() {
    let root = workspace_root();
    let nats = waymark_testkit::nats_server_binary().expect("nats-server (bash .ci/install-nats)");
    let dir = waymark_testkit::TestDir::new("deploy-nats").unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    certificates(&tls);
    for name in ["server", "route"] {
        std::fs::copy(tls.join("tls.crt"), tls.join(format!("{name}.crt"))).unwrap();
        std::fs::copy(tls.join("tls.key"), tls.join(format!("{name}.key"))).unwrap();
    }
    let agencies =
        std::fs::read_to_string(root.join("deploy/k8s/base/nats/agencies.conf")).unwrap();
    std::fs::write(dir.path().join("agencies.conf"), &agencies).unwrap();
    // Each agency's user gets a real public nkey, as deploy/.env would hold.
    let nkeys: Vec<(String, String)> = agencies
        .split("$NKEY_")
        .skip(1)
        .map(|s| {
            let var: String = s
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            (
                format!("NKEY_{var}"),
                nkeys::KeyPair::new_user().public_key(),
            )
        })
        .collect();
    assert_eq!(nkeys.len(), 5, "five agency users");
    let configs = [
        ("deploy/nats/nats.conf", "/etc/nats/tls/"),
        ("deploy/k8s/base/nats/nats.conf", "/etc/nats/tls/"),
    ];
    for (conf, tls_dir) in configs {
        let text = std::fs::read_to_string(root.join(conf))
            .unwrap()
            .replace(tls_dir, &format!("{}/", tls.display()))
            .replace(
                "/data/jetstream",
                &dir.path().join("js").display().to_string(),
            )
            .replace("/var/run/nats/", &format!("{}/", dir.path().display()));
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(&nats)
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .envs(nkeys.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NATS_SERVER_NAME", "nats-1")
            .env("POD_NAME", "nats-0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nats-server -t rejects {conf}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
