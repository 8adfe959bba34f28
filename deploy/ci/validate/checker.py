"""The checker's own reading of the manifests: `checker lint --output json -` on a
render holds every routing rule (Istio, Gateway API, Argo Rollouts' traffic routing,
Flagger's Canary, each with a stable code) and derives the split; with `--expect` it
also checks that split. The validator keeps no routing rule of its own: it asserts on
the codes the checker reports.

The binary is CHECKER, else `cargo build -p checker` from the workspace. Results are
cached per render text and expectation: the self-test re-runs every check many times.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess

import yaml

from .common import LONG_RUNNING, Unit, cargo_binary, name_of

# The code of a Gateway port missing from the ingress gateway's Service (IST0162).
GATEWAY_PORT_NOT_ON_SERVICE = "TC119"

_binary: str | None = None
_cache: dict[tuple[str, str | None], dict] = {}


def binary() -> str:
    """The checker executable: CHECKER, else built by cargo (once)."""
    global _binary
    if _binary is None:
        _binary = cargo_binary("checker", "CHECKER")
    return _binary


def lint_docs(docs: list[dict], name: str, expect: str | None = None) -> dict:
    """The `checker lint --output json` document for `docs` (read on stdin), with
    `--expect EXPECT` when given."""
    text = yaml.safe_dump_all(docs, sort_keys=False)
    key = (text, expect)
    if key not in _cache:
        args = [binary(), "lint", "--output", "json", "-"]
        if expect:
            args += ["--expect", expect]
        res = subprocess.run(
            args,
            input=text, capture_output=True, text=True, check=False, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("CHECKER_")},
        )
        if res.returncode not in (0, 1):
            raise RuntimeError(f"checker lint of {name} exited {res.returncode}: {res.stderr.strip()}")
        _cache[key] = json.loads(res.stdout)
    return _cache[key]


def deployed_docs(unit: Unit) -> list[dict]:
    """The unit's documents as the cluster runs them. A controller that labels pods at
    deploy time is rendered here: Harness runs the Deployment once per track (the
    canary as NAME-canary), each pod labelled harness.io/track."""
    variants = [v for v in unit.implied_pod_labels if v]
    if not variants:
        return unit.docs
    out = []
    for doc in unit.docs:
        if doc.get("kind") not in LONG_RUNNING:
            out.append(doc)
            continue
        for i, labels in enumerate(variants):
            d = copy.deepcopy(doc)
            if i:
                d["metadata"]["name"] = f"{name_of(doc)}-{'-'.join(labels.values())}"
            spec = d.setdefault("spec", {})
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(labels)
            spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            out.append(d)
    return out


def finding_text(f: dict) -> str:
    istio = f", istioctl {f['istio_code']}" if f.get("istio_code") else ""
    return f"checker lint {f['code']} ({f['name']}{istio}) {f['field']}: {f['message']}"


def check_lint(unit: Unit, rep, expect: str | None = None) -> None:
    """Every `checker lint` finding in the unit (as deployed) is a failure; with `expect`,
    a split other than it is one too (TC127)."""
    doc = lint_docs(deployed_docs(unit), unit.name, expect)
    findings = doc.get("findings") or []
    flag = f" --expect {expect}" if expect else ""
    rep.check(not findings, unit.name, f"checker lint{flag}: {len(findings)} findings")
    for f in findings:
        rep.check(False, f"{unit.name} {f['resource']}", finding_text(f))


def check_ingress_ports(unit: Unit, rep, services: list[tuple[str, dict]]) -> None:
    """The unit's Istio Gateway ports must be on the ingress gateway's Service as each
    shipped configuration makes it (IST0162): the checker lints the unit with that
    Service added, and only its code for this is asserted here (the unit's other
    findings are check_lint's)."""
    if not any(d.get("kind") == "Gateway" and str(d.get("apiVersion", "")).startswith("networking.istio.io/")
               for d in unit.docs):
        return
    for source, service in services:
        doc = lint_docs(deployed_docs(unit) + [service], f"{unit.name} with the ingress gateway Service of {source}")
        missing = [f for f in doc.get("findings") or [] if f["code"] == GATEWAY_PORT_NOT_ON_SERVICE]
        rep.check(not missing, unit.name, f"the ingress gateway Service of {source}: {len(missing)} ports missing")
        for f in missing:
            rep.check(False, f"{unit.name} {f['resource']}", f"{finding_text(f)} (the Service as {source} configures it)")
