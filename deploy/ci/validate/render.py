"""Rendering: every kustomization with `kubectl kustomize`, the Harness templates with
Go's text/template (deploy/ci/harness-render) for every weight step, and the plain files
(the checker Jobs, Flagger's generated example with its `kind: List` unpacked), each
parsed into a Unit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from .common import DEPLOY, HARNESS_STEPS, ROOT, TLS_PASSTHROUGH, Unit, load_docs


def kustomize(path: Path) -> str:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {out.stderr.strip()}")
    return out.stdout


HARNESS_EXPR = re.compile(r"\$\{[^}]+\}")



def harness_values(canary: int, stable: int) -> dict:
    """values.yaml with the ${...} expressions replaced as Harness would replace them."""
    text = (DEPLOY / "harness" / "values.yaml").read_text()
    sample = {
        "${canaryTrafficWeight.variables.canary}": str(canary),
        "${canaryTrafficWeight.variables.stable}": str(stable),
        "${infra.kubernetes.namespace}": "tcp-echo",
        "${artifact.metadata.image}": "registry.example.com/tcp-canary/echo-server:0.1.0",
        "${workflow.variables.appVersion}": "two",
    }
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    left = set(HARNESS_EXPR.findall(code)) - set(sample)
    if left:
        raise RuntimeError(f"harness/values.yaml uses expressions the test has no sample for: {sorted(left)}")
    for k, v in sample.items():
        text = text.replace(k, v)
    return yaml.safe_load(text)


def render_harness(canary: int, stable: int, tmp: Path) -> str:
    values = tmp / f"values-{canary}-{stable}.json"
    values.write_text(json.dumps(harness_values(canary, stable)))
    out = tmp / f"harness-{canary}-{stable}"
    env = dict(os.environ)
    env.setdefault("GOCACHE", str(Path(tempfile.gettempdir()) / "tcp-canary-gocache"))
    env["GOPROXY"] = "off"
    env["GO111MODULE"] = "off"
    res = subprocess.run(
        ["go", "run", str(DEPLOY / "ci" / "harness-render" / "main.go"), str(values),
         str(DEPLOY / "harness" / "templates"), str(out)],
        capture_output=True, text=True, check=False, env=env,
    )
    if res.returncode != 0:
        raise RuntimeError(f"Go template rendering failed: {res.stderr.strip()}")
    return "".join(f"---\n{p.read_text()}" for p in sorted(out.glob("*.yaml")))


def list_items(docs: list[dict], where: str) -> list[dict]:
    """The items of `kind: List` documents (what `kubectl get -o yaml` prints), others as they are."""
    out = []
    for d in docs:
        if d.get("kind") == "List" and d.get("apiVersion") == "v1":
            items = d.get("items") or []
            if not all(isinstance(i, dict) for i in items):
                raise RuntimeError(f"{where}: an item of a List is not a mapping")
            out.extend(items)
        else:
            out.append(d)
    return out


def workspace_images() -> dict[str, str]:
    text = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'\[workspace\.package\][^\[]*?\nversion\s*=\s*"([^"]+)"', text)
    version = m.group(1) if m else "0.0.0"
    return {n: f"tcp-canary/{n}:{version}" for n in ("echo-server", "checker")}


def render_all(tmp: Path) -> tuple[dict[str, Unit], list[dict]]:
    units: dict[str, Unit] = {}
    steps = yaml.safe_load((DEPLOY / "kustomize" / "steps.yaml").read_text())["steps"]
    step_paths = {s["path"] for s in steps}
    overlays = {f"overlays/{p.name}" for p in (DEPLOY / "kustomize" / "overlays").iterdir() if p.is_dir()}
    missing = sorted(overlays - step_paths)
    if missing:
        raise RuntimeError(f"overlays not listed in kustomize/steps.yaml: {missing}")
    for p in sorted(step_paths):
        units[f"kustomize/{p}"] = Unit(f"kustomize/{p}", load_docs(kustomize(DEPLOY / "kustomize" / p), p))
    for p in ("gateway-api/v1", "gateway-api/v1alpha2", *TLS_PASSTHROUGH):
        units[p] = Unit(p, load_docs(kustomize(DEPLOY / p), p))
    for p in ("argo-rollouts/base", "argo-rollouts/release-two", "argo-rollouts/metrics"):
        units[p] = Unit(
            p,
            load_docs(kustomize(DEPLOY / p), p),
            # Argo adds rollouts-pod-template-hash to the pods and to both subsets alike.
            implied_pod_labels=[{}],
            kind="argo",
        )
    for p in ("flagger/base", "flagger/release-two", "flagger/metrics"):
        units[p] = Unit(p, load_docs(kustomize(DEPLOY / p), p))
    # `checker watch` and its metrics Service: nothing that routes, nothing to lint.
    units["watch"] = Unit("watch", load_docs(kustomize(DEPLOY / "watch"), "watch"), kind="watch")
    for f in sorted((DEPLOY / "flagger" / "generated").glob("*.yaml")):
        name = f"flagger/generated/{f.name}"
        units[name] = Unit(name, list_items(load_docs(f.read_text(), name), name))
    for f in sorted((DEPLOY / "jobs").glob("*.yaml")):
        name = f"jobs/{f.name}"
        units[name] = Unit(name, load_docs(f.read_text(), name), kind="jobs")
    for canary, stable in sorted(set(HARNESS_STEPS)):
        name = f"harness canary={canary} stable={stable}"
        units[name] = Unit(
            name,
            load_docs(render_harness(canary, stable, tmp), name),
            implied_pod_labels=[{"harness.io/track": "stable"}, {"harness.io/track": "canary"}],
            kind="harness",
        )
    return units, steps
