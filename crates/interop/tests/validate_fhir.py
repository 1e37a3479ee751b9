"""Validates FHIR R5 bundles written by `waymark export fhir`.

Usage: validate_fhir.py BUNDLE.json [BUNDLE.json ...]

Each bundle is parsed with the `fhir.resources` models for FHIR R5 (pinned in
.ci/python/requirements.txt): the bundle as a whole, then every entry's
resource on its own with the model of its resourceType, so an error names
the resource. fhir.resources checks structure, cardinality, data types and
formats but not code values, so this script also checks the codes of the
required bindings Waymark fills against the R5 value sets, that fullUrls are
unique `urn:uuid:<id>` URLs, and that every `urn:uuid:` reference resolves to
an entry of the same bundle.

Exit status 0 when every bundle is valid; 1 with every problem on stderr
otherwise. Prints one JSON summary line per bundle on stdout.
"""

import json
import sys
from collections import Counter

import fhir.resources
from fhir.resources import get_fhir_model_class
from fhir.resources.bundle import Bundle

# R5 required bindings used by the export: resourceType -> path -> codes.
REQUIRED = {
    "Bundle": {
        "type": {"document", "message", "transaction", "transaction-response", "batch",
                 "batch-response", "history", "searchset", "collection",
                 "subscription-notification"},
    },
    "ServiceRequest": {
        "status": {"draft", "active", "on-hold", "revoked", "completed",
                   "entered-in-error", "unknown"},
        "intent": {"proposal", "plan", "directive", "order", "original-order",
                   "reflex-order", "filler-order", "instance-order", "option"},
        "priority": {"routine", "urgent", "asap", "stat"},
    },
    "Task": {
        "status": {"draft", "requested", "received", "accepted", "rejected", "ready",
                   "cancelled", "in-progress", "on-hold", "failed", "completed",
                   "entered-in-error"},
        "intent": {"unknown", "proposal", "plan", "order", "original-order",
                   "reflex-order", "filler-order", "instance-order", "option"},
    },
    "Consent": {
        "status": {"draft", "active", "inactive", "not-done", "entered-in-error",
                   "unknown"},
        "decision": {"deny", "permit"},
    },
    "AuditEvent": {
        "action": {"C", "R", "U", "D", "E"},
    },
    "Provenance": {
        "entity.role": {"revision", "quotation", "source", "instantiates", "removal"},
    },
}


def values(obj, path):
    """Every value at a dotted path, through lists."""
    items = [obj]
    for part in path.split("."):
        nxt = []
        for it in items:
            if isinstance(it, list):
                it_list = it
            else:
                it_list = [it]
            for x in it_list:
                if isinstance(x, dict) and part in x:
                    v = x[part]
                    nxt.extend(v if isinstance(v, list) else [v])
        items = nxt
    return items


def references(obj):
    """Every Reference.reference string in a resource."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from references(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from references(v)


def check(path):
    problems = []
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        Bundle.model_validate(data)
    except Exception as e:  # pydantic.ValidationError and FHIR errors
        problems.append(f"Bundle: {e}")
    for p, allowed in REQUIRED["Bundle"].items():
        for v in values(data, p):
            if v not in allowed:
                problems.append(f"Bundle.{p} = {v!r} is not in the R5 value set")
    entries = data.get("entry", [])
    urls = Counter(e.get("fullUrl") for e in entries)
    for url, n in urls.items():
        if n > 1:
            problems.append(f"fullUrl {url} occurs {n} times")
    types = Counter()
    for i, e in enumerate(entries):
        res = e.get("resource", {})
        rtype = res.get("resourceType", "?")
        where = f"entry[{i}] {rtype}/{res.get('id')}"
        types[rtype] += 1
        if e.get("fullUrl") != f"urn:uuid:{res.get('id')}":
            problems.append(f"{where}: fullUrl {e.get('fullUrl')} is not urn:uuid:<id>")
        try:
            get_fhir_model_class(rtype).model_validate(res)
        except Exception as ex:
            problems.append(f"{where}: {ex}")
        for p, allowed in REQUIRED.get(rtype, {}).items():
            for v in values(res, p):
                if v not in allowed:
                    problems.append(f"{where}: {p} = {v!r} is not in the R5 value set")
        for ref in references(res):
            if ref.startswith("urn:uuid:") and ref not in urls:
                problems.append(f"{where}: reference {ref} does not resolve in the bundle")
    summary = {
        "bundle": path,
        "fhir_version": fhir.resources.__fhir_version__,
        "resources": len(entries),
        "by_type": dict(sorted(types.items())),
    }
    return problems, summary


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    failed = False
    for path in argv[1:]:
        problems, summary = check(path)
        print(json.dumps(summary, sort_keys=True))
        for p in problems:
            failed = True
            print(f"{path}: {p}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
