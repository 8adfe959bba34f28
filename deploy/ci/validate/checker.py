"""The checker's own reading of the manifests: `checker lint --output json -` on a
render gives its routing findings and the split it derives (route weights -> subsets or
Services -> workloads -> the version their args give), so the validator derives no
split itself and reports what users of the checker would see.

The binary is CHECKER, else `cargo build -p checker` from the workspace. Results are
cached per render text: the self-test re-runs every check many times.
"""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from .common import Unit, cargo_binary

_binary: str | None = None
_cache: dict[str, dict] = {}


def binary() -> str:
    """The checker executable: CHECKER, else built by cargo (once)."""
    global _binary
    if _binary is None:
        _binary = cargo_binary("checker", "CHECKER")
    return _binary


def lint(unit: Unit) -> dict:
    """The `checker lint --output json` document for the unit's documents (read on stdin)."""
    text = yaml.safe_dump_all(unit.docs, sort_keys=False)
    if text not in _cache:
        res = subprocess.run(
            [binary(), "lint", "--output", "json", "-"],
            input=text, capture_output=True, text=True, check=False, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("CHECKER_")},
        )
        if res.returncode not in (0, 1):
            raise RuntimeError(f"checker lint of {unit.name} exited {res.returncode}: {res.stderr.strip()}")
        _cache[text] = json.loads(res.stdout)
    return _cache[text]


def derived_split(unit: Unit) -> tuple[dict[str, float] | None, str]:
    """(version -> percent of new connections, "") as the checker derives it, or
    (None, the checker's sentence naming the resource and field)."""
    doc = lint(unit)
    split = doc.get("split")
    if split is None:
        e = doc.get("split_error") or {}
        return None, f"the checker derives no split: {e.get('resource')} {e.get('field')}: {e.get('message')}"
    return {v["name"]: round(100.0 * v["share"], 6) for v in split["versions"]}, ""


def check_lint(unit: Unit, rep) -> None:
    """Every `checker lint` finding in the unit is a failure."""
    doc = lint(unit)
    findings = doc.get("findings") or []
    rep.check(not findings, unit.name, f"checker lint: {len(findings)} findings")
    for f in findings:
        istio = f", istioctl {f['istio_code']}" if f.get("istio_code") else ""
        rep.check(
            False,
            f"{unit.name} {f['resource']}",
            f"checker lint {f['code']} ({f['name']}{istio}) {f['field']}: {f['message']}",
        )
