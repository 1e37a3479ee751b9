"""Checks Waymark's deployment files (deploy/) without Docker or a cluster.

Usage: validate_deploy.py REPO_ROOT          (run by tests/tests/deploy.rs)
       validate_deploy.py REPO_ROOT --dump   prints {"compose": the interpolated
                                             compose file, "k8s": the rendered
                                             objects} as JSON, for deploy.rs

- compose.yaml: parsed and validated by compose-spec (the compose_spec Rust
  crate's rules), then structural checks: three NATS nodes with JetStream and
  cluster routes to each other, including the generated auth.conf whose users
  are exactly the five agencies and the stream provisioner, a one-shot
  `waymark nats provision` service (after healthy NATS, with the agencies'
  stream replicas), the five agencies each with its node.toml, secrets mount,
  a healthy-NATS dependency and a dependency on the provisioner having
  completed, an OpenTelemetry Collector whose config routes OTLP traces to the
  Jaeger service.
- deploy/k8s/base: rendered like `kustomize build` for exactly the features
  used (resources, configMapGenerator, namespace, labels; anything else is
  refused so the renderer cannot silently diverge), every object validated
  against the Kubernetes 1.37 JSON schemas (kubernetes-validate, strict), and
  cross-references: every ConfigMap (and key) referenced exists, every Secret
  and key referenced is declared in deploy/k8s/required-secrets.txt and
  every declared one is used, the NATS StatefulSet has 3 replicas behind a
  headless Service and its routes name exactly its 3 pods, its auth.conf
  users are the five agencies and the provisioner, a Job runs
  `waymark nats provision` with the agencies' stream replicas and files from
  its own Secret, Services select pods, each agency's node.toml file paths
  are keys of its Secret.

Prints every problem and exits 1 if there is any; prints the number of
checks passed otherwise.
"""

import json
import pathlib
import re
import sys
import tomllib

import compose_spec
import kubernetes_validate
import yaml

K8S_VERSION = "1.37.0"
AGENCIES = {
    "police": "bg-police-sofia",
    "shelter": "bg-shelter-sofia",
    "ngo": "bg-ngo-outreach",
    "returndesk": "iom-return-sofia",
    "labour": "bg-labour-ministry",
}
SECRETS_DIR = "/run/secrets/waymark/"

problems: list[str] = []
passed = 0


def check(ok: bool, what: str) -> bool:
    global passed
    if ok:
        passed += 1
    else:
        problems.append(what)
    return ok


def routes(conf: str) -> set[str]:
    return set(re.findall(r"nats-route://([A-Za-z0-9.-]+):6222", conf))


PROVISIONER = "waymark-provisioner"


def auth_users(conf: str) -> list[str]:
    """The users of a `waymark keys nats` file: each is `# name` then `{ nkey:`."""
    return re.findall(r"#\s*(\S+)\s*\n\s*\{\s*nkey:", conf)


def flags(args: list[str]) -> dict[str, str]:
    """`--name=value` and `--name value` of a command line."""
    out, i = {}, 0
    while i < len(args):
        a = str(args[i])
        if a.startswith("--"):
            if "=" in a:
                k, _, v = a[2:].partition("=")
                out[k] = v
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                out[a[2:]] = str(args[i + 1])
                i += 1
        i += 1
    return out


def check_provisioner(who: str, args: list[str], replicas: set[int]) -> None:
    """A `waymark nats provision` command line: TLS with a client certificate,
    the provisioner seed and secrets under SECRETS_DIR, the agencies' replicas."""
    if not check(list(args[:3]) == ["waymark", "nats", "provision"],
                 f"{who}: runs `waymark nats provision`, not {args[:3]}"):
        return
    f = flags(list(args[3:]))
    check(f.get("url", "").startswith("tls://nats:"), f"{who}: connects to tls://nats")
    for k in ("nkey-seed-file", "tls-ca-file", "tls-cert-file", "tls-key-file"):
        check(f.get(k, "").startswith(SECRETS_DIR), f"{who}: --{k} under {SECRETS_DIR}")
    check(len(replicas) == 1 and f.get("stream-replicas") == str(next(iter(replicas))),
          f"{who}: --stream-replicas {f.get('stream-replicas')} != the agencies' {replicas}")


def node_replicas(node: dict) -> int:
    return node.get("nats", {}).get("stream_replicas", 1)


# ---- compose ---------------------------------------------------------------

# What deploy/.env would hold (the values only need to be well-formed).
COMPOSE_ENV = {"WAYMARK_AUTHORITY_KEY": "00" * 32}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env:
            return env[name]
        if op == ":?":
            check(False, f"compose.yaml needs ${name} ({arg}) and the test env lacks it")
            return ""
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, text)


def check_compose(deploy: pathlib.Path) -> None:
    text = interpolate((deploy / "compose.yaml").read_text(), COMPOSE_ENV)
    try:
        # YAML merge keys (`<<: *agency`) resolved as docker compose does.
        compose_spec.PyOptions(apply_merge=True).from_yaml(text).validate()
        check(True, "")
    except Exception as e:  # the binding raises its own error types
        check(False, f"compose.yaml does not validate: {e}")
    doc = yaml.safe_load(text)
    services = doc.get("services", {})

    def mounts(svc: dict) -> dict[str, str]:
        out = {}
        for v in svc.get("volumes", []):
            parts = v.split(":")
            out[parts[1]] = parts[0]
        return out

    for source in {
        m.split(":")[0]
        for s in services.values()
        for m in s.get("volumes", [])
        if m.startswith("./") and not m.startswith("./secrets")
    }:
        check((deploy / source).exists(), f"compose mounts {source}, which does not exist")

    nats = [f"nats-{i}" for i in (1, 2, 3)]
    for n in nats:
        svc = services.get(n)
        if not check(svc is not None, f"compose: no service {n}"):
            continue
        m = mounts(svc)
        conf_src = m.get("/etc/nats/nats.conf")
        if not check(conf_src is not None, f"{n} mounts no /etc/nats/nats.conf"):
            continue
        conf = (deploy / conf_src).read_text()
        check("jetstream" in conf and "sync_interval: always" in conf,
              f"{n}: JetStream with sync_interval always")
        check(routes(conf) == set(nats), f"{n}: routes {routes(conf)} != {set(nats)}")
        check("/data" in m, f"{n}: JetStream store /data on a volume")
        check(svc.get("environment", {}).get("NATS_SERVER_NAME") == n,
              f"{n}: NATS_SERVER_NAME is its own name")
        check("nats" in svc.get("networks", {}).get("waymark", {}).get("aliases", []),
              f"{n}: reachable as `nats` (the agencies' URL)")
        include = re.search(r"include\s+\./(\S+)", conf)
        if check(include is not None, f"{n}: includes the agencies' users"):
            src = m.get(f"/etc/nats/{include.group(1)}")
            if check(src is not None and (deploy / src).is_file(),
                     f"{n}: mounts the included {include.group(1)} from an existing file"):
                users = auth_users((deploy / src).read_text())
                check(sorted(users) == sorted([*AGENCIES.values(), PROVISIONER]),
                      f"{n}: users {users} are not the five agencies and the provisioner")

    replicas = set()
    prov = "nats-provision"
    for kind, aid in AGENCIES.items():
        cfg = mounts(services.get(kind, {})).get("/etc/waymark/node.toml")
        if cfg:
            replicas.add(node_replicas(tomllib.loads((deploy / cfg).read_text())))
    svc = services.get(prov)
    if check(svc is not None, f"compose: no service {prov}"):
        check_provisioner(prov, svc.get("command", []), replicas)
        check(mounts(svc).get(SECRETS_DIR.rstrip("/")) == "./secrets/nats-provisioner",
              f"{prov}: its own secrets at {SECRETS_DIR}")
        check(svc.get("restart", "no") == "no", f"{prov}: one-shot (restart: no)")
        for n in nats:
            check(svc.get("depends_on", {}).get(n, {}).get("condition") == "service_healthy",
                  f"{prov}: waits for {n} to be healthy")

    for kind, aid in AGENCIES.items():
        svc = services.get(kind)
        if not check(svc is not None, f"compose: no service {kind}"):
            continue
        check(svc.get("command", [None])[0] == f"waymark-{kind}",
              f"{kind}: runs waymark-{kind}")
        m = mounts(svc)
        cfg = m.get("/etc/waymark/node.toml")
        if check(cfg is not None, f"{kind}: mounts /etc/waymark/node.toml"):
            node = tomllib.loads((deploy / cfg).read_text())
            check(node["agency"]["id"] == aid and node["agency"]["kind"] == kind,
                  f"{kind}: its node.toml is {aid}'s")
            check(node["journal"]["data_dir"].startswith("/var/lib/waymark"),
                  f"{kind}: journal on the /var/lib/waymark volume")
            check(m.get("/var/lib/waymark", "").endswith("-journal"),
                  f"{kind}: /var/lib/waymark is a named volume")
        check(m.get("/run/secrets/waymark") == f"./secrets/{aid}",
              f"{kind}: its own secrets at /run/secrets/waymark")
        deps = svc.get("depends_on", {})
        for n in nats:
            check(deps.get(n, {}).get("condition") == "service_healthy",
                  f"{kind}: waits for {n} to be healthy")
        check(deps.get(prov, {}).get("condition") == "service_completed_successfully",
              f"{kind}: starts after {prov} completed successfully")
        otlp = svc.get("environment", {}).get("WAYMARK_TELEMETRY__OTLP_ENDPOINT", "")
        check(otlp == "http://otel-collector:4317", f"{kind}: exports traces to the collector")

    col = services.get("otel-collector")
    if check(col is not None, "compose: no otel-collector"):
        conf_src = mounts(col).get("/etc/otelcol/collector.yaml")
        if check(conf_src is not None, "otel-collector mounts its config"):
            conf = yaml.safe_load((deploy / conf_src).read_text())
            pipe = conf["service"]["pipelines"]["traces"]
            check("otlp" in pipe["receivers"], "collector receives OTLP")
            jaeger_exporters = [
                e for e in pipe["exporters"]
                if conf["exporters"].get(e, {}).get("endpoint", "").split(":")[0] == "jaeger"
            ]
            check(len(jaeger_exporters) == 1, "collector routes traces to the jaeger service")
            check(any(e.startswith("file") for e in pipe["exporters"]),
                  "collector also writes traces to a file")
    check("jaeger" in services, "compose: no jaeger")


# ---- kustomize rendering -------------------------------------------------------

SUPPORTED = {"apiVersion", "kind", "namespace", "labels", "resources",
             "generatorOptions", "configMapGenerator"}
CLUSTER_SCOPED = {"Namespace"}


def render(base: pathlib.Path) -> list[dict]:
    kz = yaml.safe_load((base / "kustomization.yaml").read_text())
    unknown = set(kz) - SUPPORTED
    check(not unknown, f"kustomization uses {sorted(unknown)}, which this renderer does not implement")
    check(kz.get("generatorOptions", {}).get("disableNameSuffixHash") is True,
          "kustomization must disable name hashes (the renderer does not compute them)")
    objs: list[dict] = []
    for r in kz.get("resources", []):
        path = base / r
        if not check(path.is_file(), f"resource {r} is not a file"):
            continue
        objs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for g in kz.get("configMapGenerator", []):
        data = {}
        for f in g.get("files", []):
            key, _, src = f.rpartition("=")
            key = key or pathlib.Path(src).name
            p = base / src
            if check(p.is_file(), f"configMapGenerator {g['name']}: {src} missing"):
                data[key] = p.read_text()
        objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": g["name"]}, "data": data})
    for o in objs:
        md = o.setdefault("metadata", {})
        if o["kind"] not in CLUSTER_SCOPED and "namespace" in kz:
            md["namespace"] = kz["namespace"]
        for lab in kz.get("labels", []):
            check(not lab.get("includeSelectors") and not lab.get("includeTemplates"),
                  "labels: only metadata labels are implemented")
            md.setdefault("labels", {}).update(lab["pairs"])
    return objs


def declared_secrets(path: pathlib.Path) -> dict[str, set[str]]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, keys = line.partition(":")
            out[name.strip()] = set(keys.split())
    return out


def pod_specs(objs: list[dict]):
    for o in objs:
        if o["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
            yield o, o["spec"]["template"]["spec"]


def check_k8s(deploy: pathlib.Path) -> None:
    base = deploy / "k8s/base"
    objs = render(base)
    for o in objs:
        name = f"{o['kind']}/{o['metadata'].get('name')}"
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
            check(True, "")
        except kubernetes_validate.ValidationError as e:
            check(False, f"{name} does not validate against Kubernetes {K8S_VERSION}: "
                  f"{e.message} at {'/'.join(map(str, e.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            check(False, f"{name}: no Kubernetes {K8S_VERSION} schema for it")
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    configmaps = {n: o.get("data", {}) for (k, n), o in by.items() if k == "ConfigMap"}
    secrets = declared_secrets(deploy / "k8s/required-secrets.txt")
    used_secrets: dict[str, set[str]] = {}

    for o, spec in pod_specs(objs):
        who = f"{o['kind']}/{o['metadata']['name']}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in o["spec"].get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v:
                cm = v["configMap"]["name"]
                if check(cm in configmaps, f"{who}: ConfigMap {cm} does not exist"):
                    for it in v["configMap"].get("items", []):
                        check(it["key"] in configmaps[cm], f"{who}: {cm} has no key {it['key']}")
            if "secret" in v:
                s = v["secret"]["secretName"]
                keys = {it["key"] for it in v["secret"].get("items", [])}
                used_secrets.setdefault(s, set()).update(keys or secrets.get(s, set()))
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    used_secrets.setdefault(r["name"], set()).add(r["key"])
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    check(r["key"] in configmaps.get(r["name"], {}),
                          f"{who}: ConfigMap key {r['name']}/{r['key']} does not exist")
            for m in c.get("volumeMounts", []):
                check(m["name"] in volumes or m["name"] in claims,
                      f"{who}: mount {m['name']} has no volume")
                v = volumes.get(m["name"], {})
                if "subPath" in m and "configMap" in v:
                    check(m["subPath"] in configmaps.get(v["configMap"]["name"], {}),
                          f"{who}: subPath {m['subPath']} is not a key of {v['configMap']['name']}")
            # An agency: its node.toml's secret files are keys of the mounted Secret.
            sec_mount = next((m for m in c.get("volumeMounts", [])
                              if m["mountPath"] == SECRETS_DIR.rstrip("/")), None)
            cfg_mount = next((m for m in c.get("volumeMounts", [])
                              if m["mountPath"] == "/etc/waymark/node.toml"), None)
            if cfg_mount:
                node_text = configmaps.get(volumes[cfg_mount["name"]]["configMap"]["name"], {}).get(
                    cfg_mount.get("subPath", ""), "")
                node = tomllib.loads(node_text)
                check(node.get("agency", {}).get("id") == o["metadata"]["name"],
                      f"{who}: runs with its own node.toml")
                sname = volumes[sec_mount["name"]]["secret"]["secretName"] if sec_mount else None
                files = re.findall(re.escape(SECRETS_DIR) + r"([A-Za-z0-9._-]+)", node_text)
                check(bool(files) and sname is not None, f"{who}: secrets mounted at {SECRETS_DIR}")
                for f in files:
                    check(f in secrets.get(sname, set()),
                          f"{who}: node.toml reads {SECRETS_DIR}{f}, not a key of Secret {sname}")
                journal = [m for m in c["volumeMounts"] if m["name"] in claims]
                check(any(node["journal"]["data_dir"].startswith(m["mountPath"]) for m in journal),
                      f"{who}: journal.data_dir is on a PersistentVolumeClaim")

    for s, keys in used_secrets.items():
        if check(s in secrets, f"Secret {s} is used but not declared in required-secrets.txt"):
            check(keys <= secrets[s], f"Secret {s}: keys {sorted(keys - secrets[s])} not declared")
    for s in secrets:
        check(s in used_secrets, f"required-secrets.txt declares {s}, which nothing uses")

    # Services select pods.
    templates = [o["spec"]["template"]["metadata"].get("labels", {}) for o, _ in pod_specs(objs)]
    for (k, n), o in by.items():
        if k == "Service":
            sel = o["spec"].get("selector", {})
            check(any(sel.items() <= t.items() for t in templates),
                  f"Service {n} selects no pod template")

    # The NATS cluster.
    nats = by.get(("StatefulSet", "nats"))
    if check(nats is not None, "no StatefulSet nats"):
        replicas = nats["spec"]["replicas"]
        check(replicas == 3, f"NATS StatefulSet has {replicas} replicas, not 3")
        svc = by.get(("Service", nats["spec"]["serviceName"]))
        check(svc is not None and svc["spec"].get("clusterIP") == "None",
              "NATS StatefulSet's serviceName is a headless Service")
        check(bool(nats["spec"].get("volumeClaimTemplates")), "NATS JetStream store on PVCs")
        spec = nats["spec"]["template"]["spec"]
        cm = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
        conf = configmaps[cm]["nats.conf"]
        want = {f"nats-{i}.{nats['spec']['serviceName']}" for i in range(replicas)}
        check(routes(conf) == want, f"NATS routes {sorted(routes(conf))} != {sorted(want)}")
        check("sync_interval: always" in conf, "NATS fsyncs every message")
        env = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
        # Variables in value position (`key: $VAR`), not `$JS...` subjects in strings.
        for var in re.findall(r":\s*\$([A-Z_][A-Z0-9_]*)", "\n".join(configmaps[cm].values())):
            check(var in env, f"NATS config uses ${var}, which the pod's environment lacks")
        include = re.search(r"include\s+\./(\S+)", conf)
        if check(include is not None, "NATS config includes its users"):
            users = auth_users(configmaps[cm].get(include.group(1), ""))
            check(sorted(users) == sorted([*AGENCIES.values(), PROVISIONER]),
                  f"NATS users {users} are not the five agencies and the provisioner")
    replicas = set()
    for kind, aid in AGENCIES.items():
        check(("StatefulSet", aid) in by, f"no StatefulSet for {kind} agency {aid}")
        replicas.add(node_replicas(tomllib.loads(
            configmaps.get(f"waymark-{aid}-config", {}).get("node.toml", ""))))
    job = by.get(("Job", "nats-provision"))
    if check(job is not None, "no Job nats-provision (kustomization resources)"):
        spec = job["spec"]["template"]["spec"]
        c = spec["containers"][0]
        check_provisioner("Job/nats-provision", c.get("command", []) + c.get("args", []), replicas)
        check(spec.get("restartPolicy") in ("OnFailure", "Never"), "Job/nats-provision restartPolicy")
        mount = next((m for m in c.get("volumeMounts", [])
                      if m["mountPath"] == SECRETS_DIR.rstrip("/")), None)
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        sname = vols.get(mount["name"], {}).get("secret", {}).get("secretName") if mount else None
        check(sname == "waymark-nats-provisioner",
              f"Job/nats-provision: secrets from waymark-nats-provisioner, not {sname}")
        for f in re.findall(re.escape(SECRETS_DIR) + r"([A-Za-z0-9._-]+)", " ".join(c.get("args", []))):
            check(f in secrets.get(sname or "", set()),
                  f"Job/nats-provision reads {SECRETS_DIR}{f}, not a key of Secret {sname}")


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    deploy = root / "deploy"
    if sys.argv[2:] == ["--dump"]:
        compose = yaml.safe_load(interpolate((deploy / "compose.yaml").read_text(), COMPOSE_ENV))
        print(json.dumps({"compose": compose, "k8s": render(deploy / "k8s/base")}))
        return 1 if problems else 0
    check_compose(deploy)
    check_k8s(deploy)
    for p in problems:
        print(f"problem: {p}")
    print(f"deploy: {passed} checks passed, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
