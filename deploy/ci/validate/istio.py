"""What the routing checks need from deploy/ beyond the renders, and what is not a
routing rule: the ingress gateway's Service as each shipped configuration makes it (for
`checker lint`'s IST0162 rule), the split each render must route as its step or its
comment documents (for `checker lint --expect`), Argo Rollouts' analysis wiring, and the
Harness renders' weights. Every routing rule itself is the checker's (checker.py)."""

from __future__ import annotations

import re

import yaml

from .common import DEPLOY, TLS_PASSTHROUGH, Report, Unit, by_kind, is_echo_server
from .server import server_version

# How Istio's default install selects and names its ingress gateway pods and Service.
INGRESS_SELECTOR = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
# The ports of that Service in the default install, which the strategic merge patch keeps.
DEFAULT_INGRESS_PORTS = [
    {"name": "status-port", "port": 15021},
    {"name": "http2", "port": 80},
    {"name": "https", "port": 443},
]


def ingress_gateway_services() -> list[tuple[str, dict]]:
    """The ingress gateway Service as each shipped configuration in deploy/ingress-gateway
    makes it: the Service patch, the Helm values, the IstioOperator (their ports)."""
    d = DEPLOY / "ingress-gateway"
    patch = yaml.safe_load((d / "service-port-31400.patch.yaml").read_text())
    helm = yaml.safe_load((d / "helm-values.yaml").read_text())
    op = yaml.safe_load((d / "istiooperator.yaml").read_text())
    op_ports = [
        p
        for g in op["spec"]["components"]["ingressGateways"]
        for p in ((g.get("k8s") or {}).get("service") or {}).get("ports") or []
    ]
    sources = {
        # A strategic merge patch merges by port: the install's own ports stay.
        "ingress-gateway/service-port-31400.patch.yaml": DEFAULT_INGRESS_PORTS + patch["spec"]["ports"],
        "ingress-gateway/helm-values.yaml": helm["service"]["ports"],
        "ingress-gateway/istiooperator.yaml": op_ports,
    }
    return [
        (
            source,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                "spec": {
                    "selector": dict(INGRESS_SELECTOR),
                    "ports": [{k: p[k] for k in ("name", "port") if k in p} for p in ports],
                },
            },
        )
        for source, ports in sources.items()
    ]


def walk_expects(units: dict[str, Unit], steps: list[dict], readme: str, rep: Report) -> dict[str, str]:
    """The split each step of the walk must route (its `expect`, checked by `checker
    lint --expect`), by unit; each step rendered and its command in deploy/README.md."""
    out = {}
    for step in steps:
        key = f"kustomize/{step['path']}"
        where = f"walk step '{step['name']}' ({step['path']})"
        if rep.check(key in units, where, "not rendered"):
            out[key] = step["expect"]
        rep.check(
            f"--expect {step['expect']}" in readme,
            where,
            f"deploy/README.md does not show the checker command with --expect {step['expect']}",
        )
    return out


def documented_expects(units: dict[str, Unit], rep: Report) -> dict[str, str]:
    """The split each Gateway API and TLS passthrough render must route, as its
    kustomization's comment documents it (`checker verify ... --expect SPLIT`)."""
    out = {}
    for name in ("gateway-api/v1", "gateway-api/v1alpha2", *TLS_PASSTHROUGH):
        text = (DEPLOY / name / "kustomization.yaml").read_text()
        m = re.search(r"--expect (\S+)", text)
        if rep.check(m is not None, f"{name}/kustomization.yaml", "documents no `checker verify --expect` command") \
                and name in units:
            out[name] = m.group(1)
    return out


def check_argo(unit: Unit, rep: Report) -> None:
    """Argo Rollouts' analysis wiring (not routing, which `checker lint` checks): the
    canary-version annotation the analysis passes on is the pod template's version, and
    each analysis after a setWeight passes the template's args with that weight."""
    templates = by_kind(unit, "AnalysisTemplate")
    for name, ro in by_kind(unit, "Rollout").items():
        where = f"{unit.name} Rollout/{name}"
        canary = ((ro.get("spec") or {}).get("strategy") or {}).get("canary") or {}
        annotations = (ro.get("metadata") or {}).get("annotations") or {}
        containers = (((ro.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        version = next((server_version(c) for c in containers if is_echo_server(c)), None)
        rep.check(
            annotations.get("tcp-canary.dev/canary-version") == version,
            where,
            f"annotation tcp-canary.dev/canary-version must equal the pod template's version {version}",
        )
        weight = 0
        for step in canary.get("steps") or []:
            if "setWeight" in step:
                weight = step["setWeight"]
            analysis = step.get("analysis")
            if not analysis:
                continue
            args = {a.get("name"): a for a in analysis.get("args") or []}
            for t in analysis.get("templates") or []:
                tmpl = templates.get(t.get("templateName"))
                if not rep.check(tmpl is not None, where, f"AnalysisTemplate {t.get('templateName')} is not in this render"):
                    continue
                for a in (tmpl.get("spec") or {}).get("args") or []:
                    rep.check(
                        "value" in a or a.get("name") in args,
                        where,
                        f"analysis after setWeight {weight} does not pass the template's arg {a.get('name')}",
                    )
            got = (args.get("stable-weight", {}).get("value"), args.get("canary-weight", {}).get("value"))
            rep.check(
                got == (str(100 - weight), str(weight)),
                where,
                f"analysis after setWeight {weight} expects stable/canary {got}, not {100 - weight}/{weight}",
            )


def check_harness_weights(unit: Unit, canary: int, stable: int, rep: Report) -> None:
    """The Harness template renders the weights of the step's values (template rendering,
    not routing)."""
    vss = list(by_kind(unit, "VirtualService").values())
    if not rep.check(len(vss) == 1, unit.name, "expected one VirtualService"):
        return
    got = {
        ((d.get("destination") or {}).get("subset")): d.get("weight")
        for r in vss[0]["spec"].get("tcp") or []
        for d in r.get("route") or []
    }
    rep.check(
        got == {"stable": stable, "canary": canary},
        unit.name,
        f"rendered weights {got}, values say stable {stable} canary {canary}",
    )
