"""Renders and validates everything under deploy/ (called by deploy/ci/check as
`python3 -m validate`, with deploy/ci on PYTHONPATH).

What it does, in order:
  1. renders every kustomization (the walk's base and overlays, Gateway API v1 and
     v1alpha2, Argo Rollouts base and release, Flagger base and release) with `kubectl
     kustomize`, the Harness templates with Go's text/template (deploy/ci/harness-render)
     for every weight step, and reads the plain files (the checker Jobs, Flagger's
     generated example)                                                       [render]
  2. parses every document and validates it: custom resources against the CRD schemas
     in ../shared/schemas (override: TCP_CANARY_SCHEMAS) made strict (unknown fields are
     errors wherever the CRD does not say x-kubernetes-preserve-unknown-fields),
     built-in kinds against Kubernetes 1.27's strict schemas (kubernetes-validate) [schema]
  3. cross-checks what users get wrong: Service port names and appProtocol, probes,
     security context, grace period vs. the server's shutdown settings (the echo-server
     binary resolves each container's args and env with --print-config; ECHO_SERVER_BIN,
     else cargo builds it)                                               [policy, server]
     every routing rule is the checker's: `checker lint --output json` on every render
     (Harness's as it deploys, one Deployment per track) has no finding, with `--expect`
     the split each walk step, Gateway API render and Flagger's example must route, and
     with the ingress gateway Service of each deploy/ingress-gateway configuration no
     Gateway port missing from it (IST0162) (CHECKER, else cargo builds it)  [checker]
     what the checks need from deploy/ and what is not routing: the documented splits,
     Argo's analysis args, the Harness renders' weights                       [istio]
     Flagger's generated example is what Flagger generates from deploy/flagger's Canary
     and Deployments                                                        [flagger]
     the watch's --metrics-listen, probes and expectation ConfigMap agree; every
     Prometheus query of Flagger's and Argo's templates names metrics the checker
     serves (README's table) and the watch's job                            [metrics]
  4. with --self-test, breaks copies of the renders on purpose and asserts that each
     breakage is reported (so these checks can fail)                       [selftest]

Prints one line per finding and ends with `checks: N passed, M failed`. (The walk
itself is rehearsed from its manifests by `checker rehearse --plan
deploy/kustomize/steps.yaml`, in .ci/run.)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from .checker import check_ingress_ports, check_lint
from .ci_examples import check_ci_examples
from .common import DEPLOY, ROOT, Report, Unit
from .flagger import check_flagger
from .metrics import check_metrics
from .istio import (
    check_argo,
    check_harness_weights,
    documented_expects,
    ingress_gateway_services,
    walk_expects,
)
from .policy import check_harness_static, check_services, check_workloads
from .render import render_all, workspace_images
from .schema import load_crd_schemas, validate_schema
from .selftest import self_test


def run_checks(units: dict[str, Unit], steps: list[dict], crds: dict, readme: str) -> Report:
    rep = Report()
    images = workspace_images()
    ingress = ingress_gateway_services()
    # The split each render must route, where deploy/ says it.
    expects = walk_expects(units, steps, readme, rep)
    expects.update(documented_expects(units, rep))
    expects.update(check_flagger(units, rep))
    for unit in units.values():
        validate_schema(unit, crds, rep)
        check_workloads(unit, rep, images)
        check_services(unit, rep)
        check_argo(unit, rep)
        # The checker Jobs and the watch route nothing: there is nothing for lint to read.
        if unit.kind not in ("jobs", "watch"):
            check_lint(unit, rep, expects.get(unit.name))
            check_ingress_ports(unit, rep, ingress)
        if unit.kind == "harness":
            m = re.search(r"canary=(\d+) stable=(\d+)", unit.name)
            if m:
                check_harness_weights(unit, int(m.group(1)), int(m.group(2)), rep)
    check_harness_static(rep)
    check_ci_examples(rep)
    check_metrics(units, rep)
    return rep


def main(argv: list[str]) -> int:
    schema_dir = Path(os.environ.get("TCP_CANARY_SCHEMAS", ROOT.parent / "shared" / "schemas"))
    crds = load_crd_schemas(schema_dir)
    readme_path = DEPLOY / "README.md"
    readme = readme_path.read_text() if readme_path.exists() else ""
    with tempfile.TemporaryDirectory(prefix="tcp-canary-deploy-") as tmp:
        units, steps = render_all(Path(tmp))
    total_docs = sum(len(u.docs) for u in units.values())
    print(f"rendered {len(units)} units, {total_docs} documents; CRD schemas from {schema_dir}")
    rep = run_checks(units, steps, crds, readme)
    for f in rep.failures:
        print(f"FAIL {f}")
    passed, failed = rep.passed, len(rep.failures)
    if "--self-test" in argv:
        if failed:
            print("self-test skipped: the unbroken renders must pass first")
        else:
            caught, missed = self_test(units, steps, crds, readme, run_checks)
            for m in missed:
                print(f"FAIL {m}")
            print(f"self-test: {caught} deliberate breakages reported, {len(missed)} missed")
            passed += caught
            failed += len(missed)
    print(f"checks: {passed} passed, {failed} failed")
    return 1 if failed else 0



if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, OSError, yaml.YAMLError) as e:
        print(f"deploy check error: {e}", file=sys.stderr)
        sys.exit(1)
