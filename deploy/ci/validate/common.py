"""What every job shares: paths, constants, the rendered Unit, the Report, and small
helpers over Kubernetes documents (names, selectors, pod templates)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent.parent
ROOT = DEPLOY.parent
KUBERNETES_VERSION = "1.27"
ADMIN_PORT = 9901
SKIP_FILE_LINE = "# harness.io/skip-file-for-deploy"
# (canary, stable) weights of the Harness workflow's Apply steps, defaults first.
HARNESS_STEPS = [(0, 100), (10, 90), (20, 80), (0, 100)]
# The TLS passthrough example: Istio's tls route and its Gateway API TLSRoute twin.
TLS_PASSTHROUGH = ("tls-passthrough/istio", "tls-passthrough/gateway-api")
WORKLOAD_KINDS = {"Deployment", "Rollout", "Job", "StatefulSet", "DaemonSet"}
LONG_RUNNING = {"Deployment", "Rollout", "StatefulSet", "DaemonSet"}


@dataclass
class Unit:
    """One rendered set of documents that is applied together."""

    name: str
    docs: list[dict]
    # Labels a controller adds to pods at run time, one dict per variant
    # (Harness adds harness.io/track; Argo adds rollouts-pod-template-hash to subsets).
    implied_pod_labels: list[dict] = field(default_factory=lambda: [{}])
    kind: str = "plain"  # plain | harness | argo | jobs | watch


class Report:
    """Counts checks and collects failures."""

    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def check(self, ok: bool, where: str, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{where}: {what}")
        return ok


def load_docs(text: str, where: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in docs:
        if not isinstance(d, dict):
            raise RuntimeError(f"{where}: a document is not a mapping")
    return docs


def name_of(doc: dict) -> str:
    md = doc.get("metadata") or {}
    return md.get("name") or (md.get("generateName", "?") + "*")


def ident(doc: dict) -> str:
    return f"{doc.get('kind')}/{name_of(doc)}"


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_templates(unit: Unit) -> list[tuple[dict, dict, dict]]:
    """(owner document, pod template, job spec or {}) for every pod the unit creates."""
    out = []
    for doc in unit.docs:
        kind = doc.get("kind")
        spec = doc.get("spec") or {}
        if kind in WORKLOAD_KINDS:
            out.append((doc, spec.get("template") or {}, spec if kind == "Job" else {}))
        if kind == "AnalysisTemplate":
            for metric in spec.get("metrics") or []:
                job = ((metric.get("provider") or {}).get("job") or {}).get("spec")
                if job:
                    fake = {"kind": "Job", "metadata": {"name": f"{name_of(doc)}:{metric.get('name')}"}}
                    out.append((fake, job.get("template") or {}, job))
    return out


# echo-server flags that take no value (every other --flag takes one).


def is_echo_server(container: dict) -> bool:
    return "echo-server" in str(container.get("image", "")) or container.get("name") == "echo-server"


def pod_label_sets(unit: Unit) -> list[tuple[dict, dict, dict]]:
    """(owner, container-bearing pod spec, labels) for each pod variant, implied labels added."""
    out = []
    for owner, tmpl, _ in pod_templates(unit):
        if owner.get("kind") not in LONG_RUNNING:
            continue
        base = (tmpl.get("metadata") or {}).get("labels") or {}
        for extra in unit.implied_pod_labels:
            out.append((owner, tmpl.get("spec") or {}, {**base, **extra}))
    return out


def by_kind(unit: Unit, kind: str, api_prefix: str = "") -> dict[str, dict]:
    return {
        name_of(d): d
        for d in unit.docs
        if d.get("kind") == kind and str(d.get("apiVersion", "")).startswith(api_prefix)
    }


def cargo_binary(package: str, variable: str) -> str:
    """The path of PACKAGE's binary of the same name: $VARIABLE, else built by cargo."""
    if os.environ.get(variable):
        return os.environ[variable]
    res = subprocess.run(
        ["cargo", "build", "--quiet", "-p", package, "--bin", package,
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"cargo build -p {package} failed (or set {variable}): {res.stderr.strip()}")
    for line in res.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg.get("target", {}).get("name") == package:
            return msg["executable"]
    raise RuntimeError(f"cargo build -p {package} reported no {package} executable (set {variable})")
