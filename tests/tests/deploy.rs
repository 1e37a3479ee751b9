//! The deployment files in `deploy/`, checked without Docker or a cluster:
//!
//! - `tests/python/validate_deploy.py` (pinned tools from
//!   `.ci/python/requirements.txt`): compose.yaml against the compose spec
//!   plus structure, the kustomize base rendered and validated against the
//!   Kubernetes JSON schemas, and every cross-reference (see its docstring);
//! - every agency `node.toml` parses and uses only keys the node's config
//!   schema knows (`crates/node/src/config/schema.rs`, `KEYS`) or keys listed
//!   in [`PENDING_KEYS`];
//! - the NATS configurations parse with the pinned `nats-server -t`;
//! - no NATS user of any deploy config may use the JetStream API beyond its
//!   own durable consumers (no `$JS.API.>`), and the generated `auth.conf`
//!   files are exactly what `waymark keys nats` writes for their users;
//! - the agencies start only after the streams are provisioned (compose
//!   `depends_on` a `waymark nats provision` service; the kustomize base
//!   renders a `waymark nats provision` Job);
//! - a real `nats-server` running the compose node's config (mutual TLS,
//!   the generated users; cluster block dropped, as one node cannot form a
//!   JetStream cluster) lets the provisioner create the streams, refuses
//!   stream and foreign consumer creation to an agency, and lets the agency
//!   bind its own consumers afterwards.
//!
//! The Dockerfile cannot be built here (no Docker engine); nothing checks it
//! beyond review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use waymark_bus::provision::{self, CHECKPOINT_STREAM, EVENT_STREAM};
use waymark_bus::{BusConfig, subjects};
use waymark_federation::natsauth::{self, ProvisionTarget, SeedFiles};
use waymark_testkit::{TestDir, wait_for, workspace_root};
use waymark_types::{AgencyId, AgencyKind, EventKind};

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
    // One certificate serves as server, route and client certificate; the
    // names let a client verify it when connecting to 127.0.0.1.
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:nats,DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-extfile",
        "san.cnf",
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
    // The generated users both configs include (compose mounts this file).
    std::fs::copy(
        root.join("deploy/k8s/base/nats/auth.conf"),
        dir.path().join("auth.conf"),
    )
    .unwrap();
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

/// One user of a NATS configuration, as far as these checks need it.
#[derive(Debug)]
struct ConfUser {
    /// The `# name` comment `waymark keys nats` writes above each user.
    name: Option<String>,
    nkey: String,
    publish_allow: Vec<String>,
    publish_deny: Vec<String>,
    subscribe_allow: Vec<String>,
}

/// The quoted or bare items of the first `[...]` after `key` in `text`.
fn list_after(text: &str, key: &str) -> Vec<String> {
    let Some(i) = text.find(key) else {
        return Vec::new();
    };
    let rest = &text[i + key.len()..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every `nkey:` user of a NATS configuration with its permissions. A
/// user's text runs from its `nkey:` to the next one.
fn conf_users(text: &str) -> Vec<ConfUser> {
    let starts: Vec<usize> = text.match_indices("nkey:").map(|(i, _)| i).collect();
    let mut users = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let body = &text[start..end];
        let nkey = body["nkey:".len()..]
            .trim_start()
            .split([',', ' ', '\n'])
            .next()
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let before = text[..start].trim_end().trim_end_matches('{').trim_end();
        let name = before
            .lines()
            .last()
            .and_then(|l| l.trim().strip_prefix('#'))
            .map(|c| c.trim().to_owned());
        let publish = body.find("publish:").map_or("", |i| &body[i..]);
        let publish = publish
            .find("subscribe:")
            .map_or(publish, |i| &publish[..i]);
        let subscribe = body.find("subscribe:").map_or("", |i| &body[i..]);
        users.push(ConfUser {
            name,
            nkey,
            publish_allow: list_after(publish, "allow:"),
            publish_deny: list_after(publish, "deny:"),
            subscribe_allow: list_after(subscribe, "allow:"),
        });
    }
    users
}

/// Every NATS configuration file under deploy/.
fn nats_confs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "conf") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace_root().join("deploy"), &mut out);
    out.sort();
    out
}

/// Why `subject`, allowed to `user` (an agency id or the provisioner), is
/// more of the JetStream API than its own consumers, if it is.
fn too_broad(user: &str, subject: &str) -> Option<String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let wild = tokens.iter().position(|t| *t == "*" || *t == ">");
    // Wildcards only in a consumer's filter (`$JS.API.CONSUMER.CREATE.S.N.`
    // then the filter) or in an ack's sequence numbers (`$JS.ACK.S.N.`).
    let first_free = if tokens.get(1) == Some(&"ACK") { 4 } else { 6 };
    if subject == ">" || (tokens[0] == "$JS" && wild.is_some_and(|w| w < first_free)) {
        return Some("a wildcard over JetStream streams or API calls".into());
    }
    if tokens[0] != "$JS" {
        return None;
    }
    let own: Vec<String> = AgencyId::new(user)
        .map(|a| {
            provision::durables_of(&a)
                .into_iter()
                .map(|d| format!("{}.{}", d.stream, d.name))
                .collect()
        })
        .unwrap_or_default();
    let streams = [EVENT_STREAM, CHECKPOINT_STREAM];
    let ok = match tokens.as_slice() {
        // Stream info, and for the provisioner alone creating the streams.
        ["$JS", "API", "STREAM", op, s] => {
            streams.contains(s) && (*op == "INFO" || user == natsauth::PROVISIONER)
        }
        // Its own consumers: info and pull, exactly; acks below them.
        ["$JS", "API", "CONSUMER", "INFO", s, name]
        | ["$JS", "API", "CONSUMER", "MSG", "NEXT", s, name] => {
            own.contains(&format!("{s}.{name}"))
        }
        ["$JS", "ACK", s, name, ..] => own.contains(&format!("{s}.{name}")),
        // Creating its own consumers, with the filter in the subject.
        ["$JS", "API", "CONSUMER", "CREATE", s, name, _filter, ..] => {
            own.contains(&format!("{s}.{name}"))
        }
        _ => false,
    };
    (!ok).then(|| "not one of its own consumers or a stream lookup".into())
}

#[test]
fn no_nats_user_may_use_the_jetstream_api_beyond_its_own_consumers() {
    let root = workspace_root();
    let confs = nats_confs();
    let mut generated = 0;
    for conf in &confs {
        let rel = conf.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(conf).unwrap();
        // Users come only from generated files: no `authorization` block,
        // no user/password or token users.
        let keys = ["authorization", "user:", "password:", "token:"];
        assert!(
            !text
                .lines()
                .map(str::trim_start)
                .filter(|l| !l.starts_with('#'))
                .any(|l| keys.iter().any(|k| l.contains(k))),
            "{rel}: users belong in the generated auth.conf (nkeys, `accounts`)"
        );
        let users = conf_users(&text);
        for u in &users {
            let name = u
                .name
                .clone()
                .unwrap_or_else(|| panic!("{rel}: user {} has no `# name`", u.nkey));
            assert!(u.nkey.starts_with('U'), "{rel}: {name}: nkey {}", u.nkey);
            for s in &u.publish_allow {
                if let Some(why) = too_broad(&name, s) {
                    panic!("{rel}: {name} may publish {s}: {why}");
                }
            }
            // Replies and pull deliveries: its own prefix only.
            let inbox = if name == natsauth::PROVISIONER {
                natsauth::provisioner_inbox_prefix()
            } else {
                subjects::inbox_prefix(&AgencyId::new(&name).unwrap())
            };
            assert_eq!(u.subscribe_allow, [format!("{inbox}.>")], "{rel}: {name}");
            if name != natsauth::PROVISIONER {
                for d in ["$JS.API.DIRECT.GET.>", "$JS.API.STREAM.MSG.GET.>"] {
                    assert!(u.publish_deny.iter().any(|x| x == d), "{rel}: {name}: {d}");
                }
            }
        }
        let header = natsauth::render(&[]);
        if !text.starts_with(header.lines().next().unwrap()) {
            assert!(users.is_empty(), "{rel}: users outside a generated file");
            continue;
        }
        // Exactly the generator's output for these users and keys: a
        // hand edit or a file stale against the bus's subjects fails here.
        generated += 1;
        let again: Vec<natsauth::User> = users
            .iter()
            .map(|u| {
                let name = u.name.clone().unwrap();
                let permissions = if name == natsauth::PROVISIONER {
                    natsauth::provisioner_permissions()
                } else {
                    natsauth::agency_permissions(&AgencyId::new(&name).unwrap())
                };
                natsauth::User {
                    name,
                    nkey: u.nkey.clone(),
                    permissions,
                }
            })
            .collect();
        assert_eq!(
            text,
            natsauth::render(&again),
            "{rel} is not what `waymark keys nats` writes: regenerate it"
        );
    }
    assert_eq!(
        generated, 2,
        "deploy/nats/auth.conf and the deploy's: {confs:?}"
    );

    // The deployment's users: exactly its five agencies and the provisioner.
    let deployed =
        conf_users(&std::fs::read_to_string(root.join("deploy/k8s/base/nats/auth.conf")).unwrap());
    let names: BTreeSet<String> = deployed.iter().filter_map(|u| u.name.clone()).collect();
    let mut want: BTreeSet<String> = node_configs()
        .iter()
        .map(|f| f.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    want.insert(natsauth::PROVISIONER.to_owned());
    assert_eq!(names, want);
    // Both deployed server configs take their users from it and nowhere else.
    for conf in ["deploy/nats/nats.conf", "deploy/k8s/base/nats/nats.conf"] {
        let text = std::fs::read_to_string(root.join(conf)).unwrap();
        let includes: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("include "))
            .collect();
        assert_eq!(includes, ["./auth.conf"], "{conf}");
    }

    // The check itself: the old grant and wildcards over foreign consumers fail.
    assert!(too_broad("bg-police-sofia", "$JS.API.>").is_some());
    assert!(
        too_broad(
            "bg-police-sofia",
            "$JS.API.CONSUMER.CREATE.WAYMARK_EVENTS.>"
        )
        .is_some()
    );
    assert!(
        too_broad(
            "bg-police-sofia",
            "$JS.API.CONSUMER.MSG.NEXT.WAYMARK_EVENTS.*"
        )
        .is_some()
    );
    assert!(
        too_broad(
            "bg-police-sofia",
            "$JS.API.CONSUMER.CREATE.WAYMARK_EVENTS.inbox-bg-shelter-sofia.waymark.v1.evt.*.bg-shelter-sofia.*"
        )
        .is_some()
    );
    assert!(too_broad("bg-police-sofia", "$JS.API.STREAM.CREATE.WAYMARK_EVENTS").is_some());
    assert!(
        too_broad(
            "bg-police-sofia",
            "$JS.ACK.WAYMARK_EVENTS.inbox-bg-police-sofia.>"
        )
        .is_none()
    );
}

/// The compose file (interpolated) and the rendered kustomize objects, as
/// `validate_deploy.py --dump` prints them.
fn dump() -> Value {
    let root = workspace_root();
    let out = Command::new(python())
        .arg(root.join("tests/python/validate_deploy.py"))
        .arg(&root)
        .arg("--dump")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The argument list of a compose service or a container, as strings.
fn argv(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn is_provisioner(args: &[String]) -> bool {
    args.len() >= 3 && args[..3] == ["waymark", "nats", "provision"]
}

#[test]
fn agencies_start_after_the_streams_are_provisioned() {
    let d = dump();

    // compose: one provisioning service; every agency waits for its success.
    let services = d["compose"]["services"].as_object().unwrap();
    let provisioners: Vec<&String> = services
        .iter()
        .filter(|(_, s)| is_provisioner(&argv(&s["command"])))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(provisioners.len(), 1, "{provisioners:?}");
    let prov = provisioners[0];
    let agencies: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| {
            argv(&s["command"])
                .first()
                .is_some_and(|c| c.starts_with("waymark-"))
        })
        .collect();
    assert_eq!(agencies.len(), 5);
    let secrets_of = |s: &Value| -> Vec<String> {
        argv(&s["volumes"])
            .into_iter()
            .filter(|v| v.starts_with("./secrets/"))
            .collect()
    };
    let prov_secrets = secrets_of(&services[prov]);
    assert_eq!(prov_secrets.len(), 1, "{prov}: {prov_secrets:?}");
    for (name, s) in &agencies {
        assert_eq!(
            s["depends_on"][prov.as_str()]["condition"],
            "service_completed_successfully",
            "compose service {name} must wait for {prov}"
        );
        assert!(
            secrets_of(s).iter().all(|v| !prov_secrets.contains(v)),
            "{name} gets the provisioner's secrets"
        );
    }
    // The provisioner itself waits for the brokers.
    let deps = services[prov]["depends_on"].as_object().unwrap();
    assert!(
        deps.iter()
            .filter(|(n, _)| n.starts_with("nats-"))
            .all(|(_, c)| c["condition"] == "service_healthy")
            && deps.keys().filter(|n| n.starts_with("nats-")).count() == 3,
        "{deps:?}"
    );

    // Kubernetes: the base renders a provisioning Job (so the kustomization
    // lists it), with its own Secret, which no agency mounts.
    let objs = d["k8s"].as_array().unwrap();
    let pod = |o: &Value| o["spec"]["template"]["spec"].clone();
    let jobs: Vec<&Value> = objs
        .iter()
        .filter(|o| {
            o["kind"] == "Job"
                && pod(o)["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| is_provisioner(&argv(&c["args"])))
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one `waymark nats provision` Job");
    let secret_names = |spec: &Value| -> BTreeSet<String> {
        spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_owned))
            .collect()
    };
    let job_secrets = secret_names(&pod(jobs[0]));
    assert_eq!(job_secrets.len(), 1, "{job_secrets:?}");
    let mut statefulsets = 0;
    for o in objs.iter().filter(|o| o["kind"] == "StatefulSet") {
        statefulsets += 1;
        assert!(
            secret_names(&pod(o)).is_disjoint(&job_secrets),
            "{} mounts the provisioner's Secret",
            o["metadata"]["name"]
        );
    }
    assert_eq!(statefulsets, 6, "NATS and five agencies");
}

/// A `nats-server` child process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Errors = Arc<Mutex<Vec<String>>>;

/// Connects over mutual TLS as `who` with its seed, collecting the server's
/// permission errors.
async fn connect_agency(
    url: &str,
    tls: &Path,
    seed_file: &Path,
    who: &AgencyId,
) -> anyhow::Result<(async_nats::Client, Errors)> {
    let errors: Errors = Arc::default();
    let sink = errors.clone();
    let client = async_nats::ConnectOptions::new()
        .nkey(natsauth::load_seed(seed_file)?.seed()?)
        .custom_inbox_prefix(subjects::inbox_prefix(who))
        .add_root_certificates(tls.join("ca.crt"))
        .require_tls(true)
        .add_client_certificate(tls.join("tls.crt"), tls.join("tls.key"))
        .event_callback(move |e| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = e {
                    sink.lock().await.push(e.to_string().to_lowercase());
                }
            }
        })
        .connect(url)
        .await?;
    Ok((client, errors))
}

#[tokio::test]
async fn the_deployed_broker_lets_only_the_provisioner_create_streams() -> anyhow::Result<()> {
    let root = workspace_root();
    let nats = waymark_testkit::nats_server_binary()?;
    let dir = TestDir::new("deploy-broker")?;
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls)?;
    certificates(&tls);
    for name in ["server", "route"] {
        std::fs::copy(tls.join("tls.crt"), tls.join(format!("{name}.crt")))?;
        std::fs::copy(tls.join("tls.key"), tls.join(format!("{name}.key")))?;
    }
    // The deployment's users with fresh seeds, from the generator the
    // committed auth.conf is checked against.
    let ids: Vec<AgencyId> = node_configs()
        .iter()
        .map(|f| AgencyId::new(f.file_stem().unwrap().to_str().unwrap()).unwrap())
        .collect();
    let seeds = SeedFiles {
        provisioner: dir.path().join("seeds/provisioner.nk"),
        agencies: ids
            .iter()
            .map(|a| (a.clone(), dir.path().join(format!("seeds/{a}.nk"))))
            .collect(),
    };
    std::fs::write(dir.path().join("auth.conf"), natsauth::ensure(&seeds)?)?;

    // The compose node's config on free loopback ports, without its cluster
    // block (three routes to hosts that do not exist here).
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (client_port, http_port) = (port(), port());
    let text = std::fs::read_to_string(root.join("deploy/nats/nats.conf"))?;
    let start = text.find("\ncluster {").expect("a cluster block");
    let end = start + text[start..].find("\n}\n").expect("cluster block ends") + 3;
    let text = format!("{}{}", &text[..start], &text[end..])
        .replace("/etc/nats/tls/", &format!("{}/", tls.display()))
        .replace(
            "/data/jetstream",
            &dir.path().join("js").display().to_string(),
        )
        .replace("0.0.0.0:4222", &format!("127.0.0.1:{client_port}"))
        .replace("0.0.0.0:8222", &format!("127.0.0.1:{http_port}"));
    assert!(text.contains("verify: true") && text.contains("include ./auth.conf"));
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, text)?;
    let log = std::fs::File::create(dir.path().join("nats.log"))?;
    let _server = Server(
        Command::new(&nats)
            .arg("-c")
            .arg(&conf)
            .env("NATS_SERVER_NAME", "nats-1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let url = format!("tls://127.0.0.1:{client_port}");
    wait_for(Duration::from_secs(20), "nats-server listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", client_port))
            .await
            .is_ok()
    })
    .await?;

    // TLS as deployed: no client certificate, no connection.
    let plain = async_nats::ConnectOptions::new()
        .nkey(natsauth::load_seed(&seeds.agencies[0].1)?.seed()?)
        .add_root_certificates(tls.join("ca.crt"))
        .require_tls(true)
        .connect(url.as_str())
        .await;
    assert!(plain.is_err(), "a client without a certificate got in");

    // An agency may neither create the streams nor a consumer beyond its own.
    let (police, police_seed) = (&seeds.agencies[0].0, &seeds.agencies[0].1);
    let other = &seeds.agencies[1].0;
    let (client, errors) = connect_agency(&url, &tls, police_seed, police).await?;
    let forbidden = [
        format!("$JS.API.STREAM.CREATE.{EVENT_STREAM}"),
        format!("$JS.API.STREAM.CREATE.{CHECKPOINT_STREAM}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENT_STREAM}"),
        format!(
            "$JS.API.CONSUMER.CREATE.{EVENT_STREAM}.inbox-{other}.{}",
            subjects::inbox_filter(other)
        ),
        format!("$JS.API.CONSUMER.INFO.{EVENT_STREAM}.inbox-{other}"),
    ];
    for s in &forbidden {
        client.publish(s.clone(), "{}".into()).await?;
    }
    client.flush().await?;
    for s in &forbidden {
        let needle = format!("\"{}\"", s.to_lowercase());
        wait_for(
            Duration::from_secs(10),
            &format!("refusal of {s}"),
            || async {
                errors
                    .lock()
                    .await
                    .iter()
                    .any(|e| e.contains("permissions violation") && e.contains(&needle))
            },
        )
        .await?;
    }
    let js = async_nats::jetstream::new(client.clone());
    assert!(js.get_stream(EVENT_STREAM).await.is_err(), "no stream yet");

    // The provisioning step as deployed: TLS, client certificate, its seed.
    let target = ProvisionTarget {
        urls: vec![url.clone()],
        seed_file: seeds.provisioner.clone(),
        tls_ca_file: Some(tls.join("ca.crt")),
        tls_client: Some((tls.join("tls.crt"), tls.join("tls.key"))),
        stream_replicas: 1,
    };
    natsauth::provision(&target).await?;
    natsauth::provision(&target).await?; // idempotent: a re-run succeeds

    // Now the agency binds its own three consumers and its events are stored.
    let cfg = BusConfig::new(police.clone(), AgencyKind::Police);
    let mut bound = BTreeMap::new();
    for d in provision::durables_of(police) {
        let want = if d.stream == EVENT_STREAM {
            provision::event_stream(&cfg)
        } else {
            provision::checkpoint_stream(&cfg)
        };
        let stream = provision::ensure_stream(&js, want).await?;
        let c = provision::durable(&stream, &cfg, d.name.clone(), d.filter).await?;
        bound.insert(d.name, c.cached_info().config.filter_subject.clone());
    }
    assert_eq!(bound.len(), 3, "{bound:?}");
    let event = subjects::event(
        police,
        other,
        subjects::SubjectKind::Event(EventKind::Receipt),
    );
    js.publish(event, "to the other agency".into())
        .await?
        .await?;
    let mut stream = js.get_stream(EVENT_STREAM).await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    Ok(())
}
