//! Layered configuration: precedence, unknown keys, and error reporting.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use waymark_node::config::{ConfigError, Origin, load_from};
use waymark_node::{NodeArgs, NodeConfig};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("signing.key"), b"not a real key").unwrap();
        Self { dir }
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("signing.key")
    }

    /// A file with the required keys plus `extra` TOML appended.
    fn file(&self, extra: &str) -> PathBuf {
        let text = format!(
            "[agency]\nid = \"bg-shelter-varna\"\nkind = \"shelter\"\ncountry = \"BG\"\n\
             [journal]\ndata_dir = \"/var/lib/waymark\"\n\
             [keys]\nsigning_key_file = {:?}\n{extra}",
            self.key()
        );
        let path = self.dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn args(file: Option<&Path>, set: &[&str]) -> NodeArgs {
    NodeArgs {
        config: file.map(Path::to_owned),
        set: set.iter().map(|s| (*s).to_owned()).collect(),
        ..NodeArgs::default()
    }
}

fn problems(err: &ConfigError) -> Vec<String> {
    err.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn each_layer_overrides_the_previous() {
    let fx = Fixture::new();
    // (file snippet, env, flags, expected listen, expected checkpoint_every_entries);
    // an empty expected listen means "must fail".
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        &'a str,
        u64,
    );
    let cases: &[Case<'_>] = &[
        ("", &[], &[], "127.0.0.1:50051", 1000),
        (
            "[grpc]\nlisten = \"127.0.0.1:7001\"\n[journal.x]\n",
            &[],
            &[],
            "",
            0,
        ),
        (
            "[grpc]\nlisten = \"127.0.0.1:7001\"\n",
            &[],
            &[],
            "127.0.0.1:7001",
            1000,
        ),
        (
            "[grpc]\nlisten = \"127.0.0.1:7001\"\n",
            &[
                ("WAYMARK_GRPC__LISTEN", "127.0.0.1:7002"),
                ("WAYMARK_JOURNAL__CHECKPOINT_EVERY_ENTRIES", "50"),
            ],
            &[],
            "127.0.0.1:7002",
            50,
        ),
        (
            "[grpc]\nlisten = \"127.0.0.1:7001\"\n",
            &[("WAYMARK_GRPC__LISTEN", "127.0.0.1:7002")],
            &[
                "grpc.listen=127.0.0.1:7003",
                "journal.checkpoint_every_entries=7",
            ],
            "127.0.0.1:7003",
            7,
        ),
    ];
    for (i, (toml, vars, set, listen, every)) in cases.iter().enumerate() {
        let file = fx.file(toml);
        let result = load_from(&args(Some(&file), set), env(vars));
        if listen.is_empty() {
            assert!(result.is_err(), "case {i}: expected an error");
            continue;
        }
        let c = result.unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(c.grpc.listen.to_string(), *listen, "case {i}");
        assert_eq!(c.journal.checkpoint_every_entries, *every, "case {i}");
        assert_eq!(c.agency.id.as_str(), "bg-shelter-varna");
    }
    // A shorthand flag beats `--set`, and the environment alone works too.
    let c = load_from(
        &NodeArgs {
            listen: Some("127.0.0.1:7004".into()),
            ..args(Some(&fx.file("")), &["grpc.listen=127.0.0.1:7003"])
        },
        env(&[]),
    )
    .unwrap();
    assert_eq!(c.grpc.listen.to_string(), "127.0.0.1:7004");
    let key = fx.key();
    let c = load_from(
        &args(None, &[]),
        env(&[
            ("WAYMARK_AGENCY__ID", "bg-police-sofia"),
            ("WAYMARK_AGENCY__KIND", "police"),
            ("WAYMARK_AGENCY__COUNTRY", "BG"),
            ("WAYMARK_JOURNAL__DATA_DIR", "/tmp/j"),
            ("WAYMARK_KEYS__SIGNING_KEY_FILE", key.to_str().unwrap()),
            ("WAYMARK_NATS__URLS", "nats://a:4222, tls://b:4222"),
            ("WAYMARK_CONFIG", "ignored: not a section key"),
        ]),
    )
    .unwrap();
    assert_eq!(c.nats.urls, ["nats://a:4222", "tls://b:4222"]);
    assert_eq!(c.journal.data_dir, Path::new("/tmp/j"));
}

#[test]
fn unknown_keys_are_rejected_and_named_in_every_layer() {
    let fx = Fixture::new();
    let file = fx.file("[grpc]\nlistn = \"127.0.0.1:1\"\n[grcp]\nlisten = \"x\"\n");
    let err = load_from(
        &args(Some(&file), &["grpc.lisen=1"]),
        env(&[("WAYMARK_GRPC__LISTN", "127.0.0.1:1")]),
    )
    .unwrap_err();
    let p = problems(&err);
    let f = file.display();
    assert!(
        p.contains(&format!("{f}: grpc.listn: unknown key")),
        "{p:#?}"
    );
    assert!(
        p.contains(&format!("{f}: grcp.listen: unknown key")),
        "{p:#?}"
    );
    assert!(
        p.contains(&"WAYMARK_GRPC__LISTN: unknown key".to_owned()),
        "{p:#?}"
    );
    assert!(
        p.contains(&"--set grpc.lisen: unknown key".to_owned()),
        "{p:#?}"
    );
}

#[test]
fn invalid_values_name_their_layer() {
    let fx = Fixture::new();
    let err = load_from(
        &args(Some(&fx.file("")), &[]),
        env(&[("WAYMARK_GRPC__LISTEN", "abc")]),
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(
        err.problems[0].origin,
        Origin::Env("WAYMARK_GRPC__LISTEN".into())
    );
    assert_eq!(
        err.to_string(),
        "invalid configuration (1 problem):\n  WAYMARK_GRPC__LISTEN: invalid socket address \"abc\""
    );

    let file = fx.file("[grpc]\nmax_request_bytes = \"big\"\n");
    let err = load_from(&args(Some(&file), &[]), env(&[])).unwrap_err();
    assert_eq!(
        problems(&err),
        [format!(
            "{}: grpc.max_request_bytes: expected an integer, found string",
            file.display()
        )]
    );
}

#[test]
fn all_problems_are_reported_together() {
    let fx = Fixture::new();
    let file = fx.file(
        "[agency.extra]\n[grpc]\nmax_concurrent_requests = 0\n\
         [nats]\nurls = [\"http://x\"]\ntls_cert_file = \"/nonexistent/cert.pem\"\n",
    );
    let err = load_from(
        &NodeArgs {
            data_dir: Some(String::new()),
            ..args(
                Some(&file),
                &["telemetry.log_format=yaml", "shutdown.grace_period_ms=soon"],
            )
        },
        env(&[
            ("WAYMARK_AGENCY__COUNTRY", "bg"),
            ("WAYMARK_AGENCY__ID", "Bad Id"),
        ]),
    )
    .unwrap_err();
    let p = problems(&err);
    let expect = [
        "WAYMARK_AGENCY__ID: invalid agency id",
        "WAYMARK_AGENCY__COUNTRY: invalid country code \"bg\"",
        "grpc.max_concurrent_requests: 0 is out of range 1..=100000",
        "nats.urls: invalid NATS URL \"http://x\"",
        "nats.tls_cert_file: cannot read \"/nonexistent/cert.pem\"",
        "agency.extra: unknown key",
        "--data-dir: must not be empty",
        "--set telemetry.log_format: invalid log format \"yaml\"",
        "--set shutdown.grace_period_ms: expected an integer, got \"soon\"",
    ];
    for e in expect {
        assert!(p.iter().any(|x| x.contains(e)), "missing {e:?} in {p:#?}");
    }
    assert_eq!(p.len(), expect.len(), "{p:#?}");
}

#[test]
fn required_keys_must_be_set() {
    let err = load_from(&args(None, &[]), env(&[])).unwrap_err();
    let p = problems(&err);
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(
        p[0].starts_with("agency.id: required but not set"),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|x| x.contains("WAYMARK_JOURNAL__DATA_DIR")),
        "{p:#?}"
    );
}

#[test]
fn cross_key_rules_are_checked() {
    let fx = Fixture::new();
    let key = fx.key();
    let err = load_from(
        &args(
            Some(&fx.file("")),
            &[&format!("nats.tls_key_file={}", key.display())],
        ),
        env(&[]),
    )
    .unwrap_err();
    assert_eq!(
        problems(&err),
        ["--set nats.tls_key_file: is set but nats.tls_cert_file is not: mutual TLS needs both"]
    );
}

#[test]
fn grpc_tls_needs_all_three_files() {
    let fx = Fixture::new();
    let key = fx.key();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let err = load_from(
        &args(
            Some(&fx.file("")),
            &[
                &format!("grpc.tls_cert_file={}", key.display()),
                &format!("grpc.tls_key_file={}", key.display()),
            ],
        ),
        env(&[]),
    )
    .unwrap_err();
    assert_eq!(
        problems(&err),
        [
            "grpc.tls_client_ca_file: is required: gRPC TLS needs grpc.tls_cert_file, grpc.tls_key_file and grpc.tls_client_ca_file together (all three or none)"
        ]
    );
    let all = load_from(
        &args(
            Some(&fx.file("")),
            &[
                &format!("grpc.tls_cert_file={}", key.display()),
                &format!("grpc.tls_key_file={}", key.display()),
                &format!("grpc.tls_client_ca_file={}", key.display()),
            ],
        ),
        env(&[]),
    );
    assert!(all.is_ok(), "{all:?}");
}

#[test]
fn secrets_readable_by_others_are_refused() {
    let fx = Fixture::new();
    let seed = fx.dir.path().join("agency.nk");
    std::fs::write(&seed, "SUAEXAMPLE").unwrap();
    std::fs::set_permissions(&seed, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let set = format!("nats.nkey_seed_file={}", seed.display());
    let err = load_from(&args(Some(&fx.file("")), &[&set]), env(&[])).unwrap_err();
    let p = problems(&err);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("--set nats.nkey_seed_file:") && p[0].contains("chmod 600"),
        "{p:#?}"
    );
    std::fs::set_permissions(&seed, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ok = load_from(&args(Some(&fx.file("")), &[&set]), env(&[])).unwrap();
    assert_eq!(ok.nats.nkey_seed_file.as_deref(), Some(seed.as_path()));
}

#[test]
fn a_loaded_config_round_trips_through_toml() {
    let fx = Fixture::new();
    let c = load_from(&args(Some(&fx.file("")), &[]), env(&[])).unwrap();
    let text = toml::to_string(&c).unwrap();
    let back: NodeConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, c);
}
