#!/usr/bin/env python3
"""Renders and validates everything under deploy/ (called by deploy/ci/check).

What it does, in order:
  1. renders every kustomization (the walk's base and overlays, Gateway API v1 and
     v1alpha2, Argo Rollouts base and release) with `kubectl kustomize`, the Harness
     templates with Go's text/template (deploy/ci/harness-render) for every weight step,
     and reads the plain files (the checker Job);
  2. parses every document and validates it: custom resources against the CRD schemas
     in ../shared/schemas (override: TCP_CANARY_SCHEMAS) made strict (unknown fields are
     errors wherever the CRD does not say x-kubernetes-preserve-unknown-fields),
     built-in kinds against Kubernetes 1.27's strict schemas (kubernetes-validate);
  3. cross-checks what users get wrong: Gateway ports present on the ingress gateway
     Service patch/values, VirtualService subsets present in a DestinationRule and
     selecting pods some workload carries, Service port names and appProtocol, probes,
     security context, grace period vs. the server's shutdown flags, the weights and
     the checker's expected split of every step of the walk, the Harness skip-file line;
  4. with --self-test, breaks copies of the renders on purpose and asserts that each
     breakage is reported (so these checks can fail).

Prints one line per finding and ends with `checks: N passed, M failed`.
With --walk-table it prints the walk instead (used by deploy/ci/walk-rehearsal):
one line per step: path, expected split, subset=version:weight per destination.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
KUBERNETES_VERSION = "1.27"
ADMIN_PORT = 9901
# The echo-server's defaults (echo-server/src/config.rs); flags in args override them.
DEFAULT_DRAIN_DELAY_S = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 25.0
SKIP_FILE_LINE = "# harness.io/skip-file-for-deploy"
# (canary, stable) weights of the Harness workflow's Apply steps, defaults first.
HARNESS_STEPS = [(0, 100), (10, 90), (20, 80), (0, 100)]
WORKLOAD_KINDS = {"Deployment", "Rollout", "Job", "StatefulSet", "DaemonSet"}
LONG_RUNNING = {"Deployment", "Rollout", "StatefulSet", "DaemonSet"}


# ---------------------------------------------------------------- helpers


@dataclass
class Unit:
    """One rendered set of documents that is applied together."""

    name: str
    docs: list[dict]
    # Labels a controller adds to pods at run time, one dict per variant
    # (Harness adds harness.io/track; Argo adds rollouts-pod-template-hash to subsets).
    implied_pod_labels: list[dict] = field(default_factory=lambda: [{}])
    kind: str = "plain"  # plain | harness | argo


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


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_expect(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        out[name.strip()] = float(weight)
    return out


def shares(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: round(100.0 * v / total, 6) for k, v in weights.items()} if total else {}


def kustomize(path: Path) -> str:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {out.stderr.strip()}")
    return out.stdout


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


# ---------------------------------------------------------------- schemas


def strictify(schema, at_root: bool = True):
    """Returns a copy of an OpenAPI v3 CRD schema where unknown fields are errors."""
    if isinstance(schema, list):
        return [strictify(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: strictify(v, False) if k in ("items", "not") else v for k, v in schema.items()}
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            s[key] = [strictify(x, False) for x in s[key]]
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strictify(s["additionalProperties"], False)
    if "properties" in s:
        s["properties"] = {k: strictify(v, False) for k, v in s["properties"].items()}
    is_object = s.get("type") == "object" or "properties" in s
    if (
        is_object
        and "additionalProperties" not in s
        and not s.get("x-kubernetes-preserve-unknown-fields")
    ):
        s["additionalProperties"] = False
    if at_root:
        props = s.setdefault("properties", {})
        # ObjectMeta is checked by the API server, not the CRD schema: keep it open here
        # and check the name separately.
        props["metadata"] = {"type": "object"}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("status", {"type": "object"})
    return s


def load_crd_schemas(schema_dir: Path) -> dict[tuple[str, str], dict]:
    """Maps (apiVersion, kind) to (strict schema, served) for every CRD version."""
    found: dict[tuple[str, str], dict] = {}
    files = sorted(schema_dir.glob("*.yaml"))
    if not files:
        raise RuntimeError(f"no CRD files in {schema_dir} (set TCP_CANARY_SCHEMAS)")
    for f in files:
        for crd in yaml.safe_load_all(f.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                raw = (v.get("schema") or {}).get("openAPIV3Schema")
                if raw is None:
                    continue
                found[(f"{group}/{v['name']}", kind)] = {
                    "schema": strictify(raw),
                    "served": v.get("served", False),
                }
    return found


def validate_schema(unit: Unit, crds: dict, rep: Report) -> None:
    for doc in unit.docs:
        where = f"{unit.name} {ident(doc)}"
        md = doc.get("metadata") or {}
        rep.check(
            bool(md.get("name") or md.get("generateName")), where, "metadata.name is missing"
        )
        for key in ("labels", "annotations"):
            values = md.get(key) or {}
            rep.check(
                all(isinstance(v, str) for v in values.values()),
                where,
                f"metadata.{key} values must all be strings",
            )
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if (api, kind) in crds:
            validator = jsonschema.Draft4Validator(crds[(api, kind)]["schema"])
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            rep.check(
                not errors,
                where,
                "; ".join(
                    f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
                    for e in errors[:5]
                ),
            )
            continue
        if any(a.split("/")[0] == api.split("/")[0] and k == kind for a, k in crds):
            rep.check(False, where, f"{api} is not a version of {kind} in the CRD schemas")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            rep.check(True, where, "")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, getattr(e, "absolute_path", []) or []))
            rep.check(False, where, f"Kubernetes {KUBERNETES_VERSION} schema: {path}: {e.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError:
            rep.check(False, where, f"no schema for {api} {kind} (not a built-in kind, no CRD)")


# ---------------------------------------------------------------- workloads


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
SERVER_SWITCHES = {"--no-admin", "--help"}


def server_args(container: dict) -> dict:
    """The echo-server's version, drain delay and shutdown timeout from its args."""
    args = [str(a) for a in container.get("args") or []]
    positional = []
    flags = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            k, _, v = a[2:].partition("=")
            flags[k] = v
        elif a.startswith("--") and a not in SERVER_SWITCHES and i + 1 < len(args):
            flags[a[2:]] = args[i + 1]  # `--flag value`, as clap accepts it too
            i += 1
        elif not a.startswith("-"):
            positional.append(a)
        i += 1
    return {
        "version": positional[1] if len(positional) > 1 else flags.get("version"),
        "drain": parse_duration(flags.get("drain-delay", f"{DEFAULT_DRAIN_DELAY_S}s")),
        "shutdown": parse_duration(
            flags.get("shutdown-timeout", f"{DEFAULT_SHUTDOWN_TIMEOUT_S}s")
        ),
    }


def is_echo_server(container: dict) -> bool:
    return "echo-server" in str(container.get("image", "")) or container.get("name") == "echo-server"


def check_workloads(unit: Unit, rep: Report, images: dict[str, str]) -> None:
    for owner, tmpl, job in pod_templates(unit):
        where = f"{unit.name} {ident(owner)}"
        kind = owner.get("kind")
        pod = tmpl.get("spec") or {}
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of"):
            rep.check(key in labels, where, f"pod template lacks the label {key}")
        if kind in LONG_RUNNING:
            sel = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            rep.check(selects(sel, labels), where, "selector.matchLabels does not match the pod labels")
        psc = pod.get("securityContext") or {}
        rep.check(psc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot must be true")
        rep.check(
            isinstance(psc.get("runAsUser"), int) and psc.get("runAsUser") != 0,
            where,
            "pod securityContext.runAsUser must be a non-zero number (FROM scratch has no /etc/passwd)",
        )
        containers = pod.get("containers") or []
        rep.check(bool(containers), where, "no containers")
        for c in containers:
            cw = f"{where} container {c.get('name')}"
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                rep.check(
                    all(k in (res.get(part) or {}) for k in ("cpu", "memory")),
                    cw,
                    f"resources.{part} needs cpu and memory",
                )
            csc = c.get("securityContext") or {}
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            rep.check(seccomp == "RuntimeDefault", cw, "seccompProfile must be RuntimeDefault")
            rep.check(csc.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem must be true")
            rep.check(csc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation must be false")
            rep.check(
                "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
                cw,
                "capabilities.drop must contain ALL",
            )
            rep.check(
                csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw, "runAsNonRoot must be true"
            )
            image = str(c.get("image", ""))
            for short, full in images.items():
                if image.startswith(full.rsplit(":", 1)[0] + ":"):
                    rep.check(image == full, cw, f"image {image} is not {full} (deploy/docker/build's tag)")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                rep.check(
                    "tcpSocket" not in (c.get(probe) or {}),
                    cw,
                    f"{probe} uses tcpSocket: with a sidecar every port looks open; use httpGet",
                )
            pre = ((c.get("lifecycle") or {}).get("preStop") or {})
            rep.check("exec" not in pre, cw, "preStop exec needs a shell; the image is FROM scratch")
            if kind in LONG_RUNNING and is_echo_server(c):
                check_server_container(unit, owner, pod, c, cw, rep)
        if kind == "Job":
            rep.check(
                labels.get("sidecar.istio.io/inject") == "false",
                where,
                'a checker Job must run outside the mesh: pod label sidecar.istio.io/inject: "false"',
            )
            rep.check(pod.get("restartPolicy") == "Never", where, "restartPolicy must be Never")
            rep.check(job.get("backoffLimit") == 0, where, "backoffLimit must be 0 (a retry hides a failure)")


def check_server_container(unit, owner, pod, c, cw, rep: Report) -> None:
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    for p in c.get("ports") or []:
        if p.get("containerPort") != ADMIN_PORT:
            rep.check(
                p.get("name") == "tcp" or str(p.get("name", "")).startswith("tcp-"),
                cw,
                f"echo port {p.get('containerPort')} must be named tcp or tcp-*",
            )
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        port = get.get("port")
        port = ports.get(port, port) if isinstance(port, str) else port
        rep.check(
            get.get("path") == path and port == ADMIN_PORT,
            cw,
            f"{probe} must be an HTTP GET of {path} on the admin port {ADMIN_PORT}",
        )
    try:
        a = server_args(c)
    except ValueError as e:
        rep.check(False, cw, str(e))
        return
    rep.check(bool(a["version"]), cw, "the echo-server args name no version (Istio form: PORTS VERSION)")
    label = ((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels", {})
    if "app.kubernetes.io/version" in label and a["version"] and "{{" not in a["version"]:
        rep.check(
            label["app.kubernetes.io/version"] == a["version"],
            cw,
            f"label app.kubernetes.io/version={label['app.kubernetes.io/version']} but the server answers as {a['version']}",
        )
    rep.check(a["drain"] < a["shutdown"], cw, "--drain-delay must be shorter than --shutdown-timeout")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    rep.check(
        grace > a["shutdown"],
        cw,
        f"terminationGracePeriodSeconds {grace} must exceed --shutdown-timeout {a['shutdown']}s "
        "(else SIGKILL cuts connections the server is still finishing)",
    )


# ---------------------------------------------------------------- services and routing


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


def check_services(unit: Unit, rep: Report) -> None:
    pods = pod_label_sets(unit)
    for name, svc in by_kind(unit, "Service").items():
        where = f"{unit.name} Service/{name}"
        spec = svc.get("spec") or {}
        matched = [p for p in pods if selects(spec.get("selector") or {}, p[2])]
        rep.check(bool(matched), where, "the selector selects the pods of no workload in this render")
        for port in spec.get("ports") or []:
            pn = str(port.get("name", ""))
            rep.check(pn == "tcp" or pn.startswith("tcp-"), where, f"port {port.get('port')} must be named tcp or tcp-* (IST0118)")
            rep.check(port.get("appProtocol") == "tcp", where, f"port {pn} needs appProtocol: tcp")
            target = port.get("targetPort", port.get("port"))
            for _, podspec, _ in matched:
                cports = [p for c in podspec.get("containers") or [] for p in c.get("ports") or []]
                ok = any(
                    (p.get("name") == target if isinstance(target, str) else p.get("containerPort") == target)
                    for p in cports
                )
                rep.check(ok, where, f"targetPort {target} is not a container port of the selected pods")


def gateway_service_ports() -> dict[str, set[int]]:
    """The ports each shipped ingress gateway configuration puts on the gateway Service."""
    d = DEPLOY / "ingress-gateway"
    patch = yaml.safe_load((d / "service-port-31400.patch.yaml").read_text())
    helm = yaml.safe_load((d / "helm-values.yaml").read_text())
    op = yaml.safe_load((d / "istiooperator.yaml").read_text())
    op_ports = [
        p
        for g in op["spec"]["components"]["ingressGateways"]
        for p in ((g.get("k8s") or {}).get("service") or {}).get("ports") or []
    ]
    return {
        "service patch": {p["port"] for p in patch["spec"]["ports"]},
        "helm values": {p["port"] for p in helm["service"]["ports"]},
        "IstioOperator": {p["port"] for p in op_ports},
    }


def check_istio(unit: Unit, rep: Report, gw_ports: dict[str, set[int]]) -> None:
    gateways = by_kind(unit, "Gateway", "networking.istio.io/")
    drs = by_kind(unit, "DestinationRule")
    services = by_kind(unit, "Service")
    pods = pod_label_sets(unit)
    for name, gw in gateways.items():
        where = f"{unit.name} Gateway/{name}"
        for server in (gw.get("spec") or {}).get("servers") or []:
            port = server.get("port") or {}
            rep.check(port.get("protocol") == "TCP", where, f"port {port.get('number')} must have protocol TCP")
            for source, ports in gw_ports.items():
                rep.check(
                    port.get("number") in ports,
                    where,
                    f"port {port.get('number')} is not on the ingress gateway Service in deploy/ingress-gateway ({source}) (IST0162)",
                )
    for name, dr in drs.items():
        where = f"{unit.name} DestinationRule/{name}"
        host = (dr.get("spec") or {}).get("host")
        rep.check(host in services, where, f"host {host} is not a Service in this render")
        for subset in (dr.get("spec") or {}).get("subsets") or []:
            rep.check(
                any(selects(subset.get("labels") or {}, p[2]) for p in pods),
                where,
                f"subset {subset.get('name')} selects the pods of no workload (IST0173)",
            )
    for name, vs in by_kind(unit, "VirtualService").items():
        where = f"{unit.name} VirtualService/{name}"
        spec = vs.get("spec") or {}
        for g in spec.get("gateways") or []:
            rep.check(g in gateways, where, f"gateway {g} is not in this render (IST0101)")
        gw_port_numbers = {
            (s.get("port") or {}).get("number")
            for g in spec.get("gateways") or []
            for s in ((gateways.get(g) or {}).get("spec") or {}).get("servers") or []
        }
        rep.check(not spec.get("http"), where, "a TCP service must not have http routes")
        for route in spec.get("tcp") or []:
            for m in route.get("match") or []:
                rep.check(
                    m.get("port") in gw_port_numbers,
                    where,
                    f"match port {m.get('port')} is not a port of its Gateway",
                )
            weights = []
            for dest in route.get("route") or []:
                d = dest.get("destination") or {}
                weight = dest.get("weight")
                weights.append(weight)
                host = d.get("host")
                svc = services.get(host)
                if not rep.check(svc is not None, where, f"destination host {host} is not a Service in this render"):
                    continue
                sports = {p.get("port") for p in (svc.get("spec") or {}).get("ports") or []}
                dport = (d.get("port") or {}).get("number")
                rep.check(
                    dport in sports if dport is not None else len(sports) == 1,
                    where,
                    f"destination port {dport} must be one of the Service's ports {sorted(sports)} (IST0112)",
                )
                subset = d.get("subset")
                known = {
                    s.get("name")
                    for dr in drs.values()
                    if (dr.get("spec") or {}).get("host") == host
                    for s in (dr.get("spec") or {}).get("subsets") or []
                }
                rep.check(subset in known, where, f"subset {subset} is not in a DestinationRule for {host} (IST0101)")
            rep.check(
                all(isinstance(w, int) and w >= 0 for w in weights) and sum(weights) == 100,
                where,
                f"the route's weights {weights} must be whole numbers summing to 100",
            )


def check_gateway_api(unit: Unit, rep: Report) -> None:
    gateways = by_kind(unit, "Gateway", "gateway.networking.k8s.io/")
    services = by_kind(unit, "Service")
    for name, route in by_kind(unit, "TCPRoute").items():
        where = f"{unit.name} TCPRoute/{name}"
        spec = route.get("spec") or {}
        for ref in spec.get("parentRefs") or []:
            gw = gateways.get(ref.get("name"))
            if not rep.check(gw is not None, where, f"parent Gateway {ref.get('name')} is not in this render"):
                continue
            listeners = {l.get("name"): l for l in (gw.get("spec") or {}).get("listeners") or []}
            listener = listeners.get(ref.get("sectionName"))
            if rep.check(listener is not None, where, f"listener {ref.get('sectionName')} does not exist"):
                rep.check(listener.get("protocol") == "TCP", where, "the listener must have protocol TCP")
                kinds = ((listener.get("allowedRoutes") or {}).get("kinds")) or []
                rep.check(
                    not kinds or any(k.get("kind") == "TCPRoute" for k in kinds),
                    where,
                    "the listener does not allow TCPRoute",
                )
        for rule in spec.get("rules") or []:
            weights = []
            for ref in rule.get("backendRefs") or []:
                weights.append(ref.get("weight", 1))
                svc = services.get(ref.get("name"))
                if rep.check(svc is not None, where, f"backend Service {ref.get('name')} is not in this render"):
                    ports = {p.get("port") for p in (svc.get("spec") or {}).get("ports") or []}
                    rep.check(ref.get("port") in ports, where, f"backend port {ref.get('port')} is not on Service {ref.get('name')}")
            rep.check(sum(weights) == 100, where, f"weights {weights} must sum to 100")


def check_argo(unit: Unit, rep: Report) -> None:
    templates = by_kind(unit, "AnalysisTemplate")
    vss = by_kind(unit, "VirtualService")
    drs = by_kind(unit, "DestinationRule")
    for name, ro in by_kind(unit, "Rollout").items():
        where = f"{unit.name} Rollout/{name}"
        canary = ((ro.get("spec") or {}).get("strategy") or {}).get("canary") or {}
        istio = (canary.get("trafficRouting") or {}).get("istio") or {}
        vsref = istio.get("virtualService") or {}
        vs = vss.get(vsref.get("name"))
        if rep.check(vs is not None, where, f"VirtualService {vsref.get('name')} is not in this render"):
            match_ports = {m.get("port") for r in vs["spec"].get("tcp") or [] for m in r.get("match") or []}
            for t in vsref.get("tcpRoutes") or []:
                rep.check(t.get("port") in match_ports, where, f"tcpRoutes port {t.get('port')} matches no tcp route")
            rep.check(bool(vsref.get("tcpRoutes")), where, "trafficRouting.istio.virtualService.tcpRoutes is empty")
        drref = istio.get("destinationRule") or {}
        dr = drs.get(drref.get("name"))
        if rep.check(dr is not None, where, f"DestinationRule {drref.get('name')} is not in this render"):
            names = {s.get("name") for s in dr["spec"].get("subsets") or []}
            for key in ("stableSubsetName", "canarySubsetName"):
                rep.check(drref.get(key) in names, where, f"{key} {drref.get(key)} is not a subset")
        annotations = (ro.get("metadata") or {}).get("annotations") or {}
        containers = (((ro.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        version = next((server_args(c)["version"] for c in containers if is_echo_server(c)), None)
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


# ---------------------------------------------------------------- the walk


def derived_split(unit: Unit) -> dict[str, float]:
    """Version -> share of new connections, derived from the render's route weights."""
    weights: dict[str, float] = {}
    for _, version, weight in route_versions(unit):
        weights[version] = weights.get(version, 0) + weight
    return shares(weights)


def route_versions(unit: Unit) -> list[tuple[str, str, float]]:
    """(subset, version, weight) for each destination of the render's TCP routes."""
    drs = by_kind(unit, "DestinationRule")
    pods = pod_label_sets(unit)
    out = []
    for vs in by_kind(unit, "VirtualService").values():
        for route in (vs.get("spec") or {}).get("tcp") or []:
            for dest in route.get("route") or []:
                subset = (dest.get("destination") or {}).get("subset")
                labels = next(
                    (
                        s.get("labels") or {}
                        for dr in drs.values()
                        for s in (dr.get("spec") or {}).get("subsets") or []
                        if s.get("name") == subset
                    ),
                    {},
                )
                versions = {
                    server_args(c)["version"]
                    for _, podspec, pl in pods
                    if selects(labels, pl)
                    for c in podspec.get("containers") or []
                    if is_echo_server(c)
                }
                if len(versions) != 1:
                    raise RuntimeError(f"{unit.name}: subset {subset} selects versions {sorted(versions)}, not one")
                out.append((subset, versions.pop(), float(dest.get("weight", 0))))
    return out


def check_walk(units: dict[str, Unit], steps: list[dict], readme: str, rep: Report) -> None:
    for step in steps:
        unit = units.get(f"kustomize/{step['path']}")
        where = f"walk step '{step['name']}' ({step['path']})"
        if not rep.check(unit is not None, where, "not rendered"):
            continue
        try:
            got = derived_split(unit)
        except RuntimeError as e:
            rep.check(False, where, str(e))
            continue
        want = shares(parse_expect(step["expect"]))
        ok = all(abs(got.get(v, 0) - want.get(v, 0)) < 1e-6 for v in set(got) | set(want))
        rep.check(ok, where, f"the render sends {got}, the step expects --expect {step['expect']}")
        rep.check(
            f"--expect {step['expect']}" in readme,
            where,
            f"deploy/README.md does not show the checker command with --expect {step['expect']}",
        )


# ---------------------------------------------------------------- Harness


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


def check_harness_static(rep: Report) -> None:
    d = DEPLOY / "harness"
    vs = (d / "templates" / "virtualservice.yaml").read_text().splitlines()
    rep.check(
        bool(vs) and vs[0].strip() == SKIP_FILE_LINE,
        "harness templates/virtualservice.yaml",
        f"the first line must be exactly {SKIP_FILE_LINE}",
    )
    for f in sorted((d / "templates").glob("*.yaml")):
        if f.name != "virtualservice.yaml":
            rep.check(
                SKIP_FILE_LINE not in f.read_text(),
                f"harness templates/{f.name}",
                "only the VirtualService is skipped for deploy (applied by the Apply steps)",
            )
    values = (d / "values.yaml").read_text()
    for line in (
        "canaryWeight: ${canaryTrafficWeight.variables.canary}",
        "stableWeight: ${canaryTrafficWeight.variables.stable}",
    ):
        rep.check(line in values.splitlines(), "harness values.yaml", f"must contain the line `{line}`")
    readme = (d / "README.md").read_text() if (d / "README.md").exists() else ""
    for canary, stable in HARNESS_STEPS:
        if canary == 0:
            continue
        cmd = f"--expect one={stable},two={canary}"
        rep.check(cmd in readme, "harness README.md", f"no checker command with {cmd}")


def check_harness_weights(unit: Unit, canary: int, stable: int, rep: Report) -> None:
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


# ---------------------------------------------------------------- driver


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
    for p in ("gateway-api/v1", "gateway-api/v1alpha2"):
        units[p] = Unit(p, load_docs(kustomize(DEPLOY / p), p))
    for p in ("argo-rollouts/base", "argo-rollouts/release-two"):
        units[p] = Unit(
            p,
            load_docs(kustomize(DEPLOY / p), p),
            # Argo adds rollouts-pod-template-hash to the pods and to both subsets alike.
            implied_pod_labels=[{}],
            kind="argo",
        )
    for f in sorted((DEPLOY / "jobs").glob("*.yaml")):
        name = f"jobs/{f.name}"
        units[name] = Unit(name, load_docs(f.read_text(), name))
    for canary, stable in sorted(set(HARNESS_STEPS)):
        name = f"harness canary={canary} stable={stable}"
        units[name] = Unit(
            name,
            load_docs(render_harness(canary, stable, tmp), name),
            implied_pod_labels=[{"harness.io/track": "stable"}, {"harness.io/track": "canary"}],
            kind="harness",
        )
    return units, steps


def run_checks(units: dict[str, Unit], steps: list[dict], crds: dict, readme: str) -> Report:
    rep = Report()
    images = workspace_images()
    gw_ports = gateway_service_ports()
    for unit in units.values():
        validate_schema(unit, crds, rep)
        check_workloads(unit, rep, images)
        check_services(unit, rep)
        check_istio(unit, rep, gw_ports)
        check_gateway_api(unit, rep)
        check_argo(unit, rep)
        if unit.kind == "harness":
            m = re.search(r"canary=(\d+) stable=(\d+)", unit.name)
            if m:
                check_harness_weights(unit, int(m.group(1)), int(m.group(2)), rep)
    check_walk(units, steps, readme, rep)
    check_harness_static(rep)
    return rep


# ---------------------------------------------------------------- self-test


def mutate(units, key, kind, name, fn):
    """A deep copy of the units with fn applied to one document."""
    out = copy.deepcopy(units)
    for d in out[key].docs:
        if d.get("kind") == kind and name_of(d) == name:
            fn(d)
            return out
    raise RuntimeError(f"self-test: {key} has no {kind}/{name}")


def self_test(units, steps, crds, readme) -> tuple[int, list[str]]:
    """Each case breaks one thing; the checks must report it (and only break there)."""
    k10 = "kustomize/overlays/2-canary-10"

    def rename_port(d):
        d["spec"]["ports"][0]["name"] = "echo"

    def drop_app_protocol(d):
        del d["spec"]["ports"][0]["appProtocol"]

    def unknown_field(d):
        d["spec"]["tcp"][0]["route"][0]["weigth"] = 5

    def wrong_subset(d):
        d["spec"]["tcp"][0]["route"][1]["destination"]["subset"] = "canary-v2"

    def subset_no_pods(d):
        d["spec"]["subsets"][1]["labels"] = {"track": "canry"}

    def gateway_port(d):
        d["spec"]["servers"][0]["port"]["number"] = 31401

    def http_protocol(d):
        d["spec"]["servers"][0]["port"]["protocol"] = "HTTP"

    def weights_swapped(d):
        d["spec"]["tcp"][0]["route"][0]["weight"] = 10
        d["spec"]["tcp"][0]["route"][1]["weight"] = 90

    def tcp_probe(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["readinessProbe"] = {"tcpSocket": {"port": 9000}}

    def short_grace(d):
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20

    def spaced_long_shutdown(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = [a for a in c["args"] if not a.startswith("--shutdown-timeout")]
        c["args"] += ["--shutdown-timeout", "40s"]

    def writable_root(d):
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False

    def no_limits(d):
        del d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]

    def unknown_builtin_field(d):
        d["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    def job_in_mesh(d):
        del d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"]

    def argo_weight(d):
        for s in d["spec"]["strategy"]["canary"]["steps"]:
            if s.get("setWeight") == 10:
                s["setWeight"] = 15

    def tcproute_weight(d):
        d["spec"]["rules"][0]["backendRefs"][0]["weight"] = 80

    def tcproute_unknown(d):
        d["spec"]["rules"][0]["backendRefs"][0]["weights"] = 80

    def rollout_unknown(d):
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"

    def listener_unknown(d):
        d["spec"]["listeners"][0]["hostnames"] = ["example.com"]

    def harness_weight(d):
        d["spec"]["tcp"][0]["route"][1]["weight"] = 30

    cases = [
        ("Service port not named tcp", k10, "Service", "tcp-echo", rename_port, "named tcp"),
        ("Service port without appProtocol", k10, "Service", "tcp-echo", drop_app_protocol, "appProtocol"),
        ("unknown field in a VirtualService", k10, "VirtualService", "tcp-echo", unknown_field, "weigth"),
        ("route to a missing subset", k10, "VirtualService", "tcp-echo", wrong_subset, "IST0101"),
        ("subset selecting no pods", k10, "DestinationRule", "tcp-echo", subset_no_pods, "IST0173"),
        ("Gateway port not on the gateway Service", k10, "Gateway", "tcp-echo-gateway", gateway_port, "IST0162"),
        ("Gateway port with protocol HTTP", k10, "Gateway", "tcp-echo-gateway", http_protocol, "protocol TCP"),
        ("walk weights differ from the step", k10, "VirtualService", "tcp-echo", weights_swapped, "the step expects"),
        ("tcpSocket readiness probe", k10, "Deployment", "tcp-echo-canary", tcp_probe, "tcpSocket"),
        ("grace period shorter than shutdown", k10, "Deployment", "tcp-echo-stable", short_grace, "terminationGracePeriodSeconds"),
        ("`--shutdown-timeout 40s` (spaced) beyond the grace period", k10, "Deployment", "tcp-echo-canary", spaced_long_shutdown, "must exceed --shutdown-timeout 40"),
        ("writable root filesystem", k10, "Deployment", "tcp-echo-stable", writable_root, "readOnlyRootFilesystem"),
        ("no resource limits", k10, "Deployment", "tcp-echo-stable", no_limits, "resources.limits"),
        ("unknown field in a Deployment", k10, "Deployment", "tcp-echo-stable", unknown_builtin_field, "readinesProbe"),
        ("checker Job inside the mesh", "jobs/checker-job.yaml", "Job", "tcp-echo-check-*", job_in_mesh, "sidecar.istio.io/inject"),
        ("Argo analysis weights differ from setWeight", "argo-rollouts/release-two", "Rollout", "tcp-echo", argo_weight, "setWeight"),
        ("TCPRoute weights not summing to 100", "gateway-api/v1", "TCPRoute", "tcp-echo", tcproute_weight, "sum to 100"),
        ("unknown field in a TCPRoute", "gateway-api/v1alpha2", "TCPRoute", "tcp-echo", tcproute_unknown, "weights"),
        ("unknown field in a Rollout's pod template", "argo-rollouts/base", "Rollout", "tcp-echo", rollout_unknown, "imagePullPolicyy"),
        ("unknown field in a Gateway API listener", "gateway-api/v1", "Gateway", "tcp-echo-gateway", listener_unknown, "hostnames"),
        ("Harness render with wrong weights", "harness canary=10 stable=90", "VirtualService", "tcp-echo", harness_weight, "rendered weights"),
    ]
    caught, missed = 0, []
    for title, key, kind, name, fn, needle in cases:
        broken = mutate(units, key, kind, name, fn)
        rep = run_checks(broken, steps, crds, readme)
        if any(needle in f for f in rep.failures):
            caught += 1
        else:
            missed.append(f"self-test '{title}': not reported (failures: {rep.failures[:3]})")
    return caught, missed


def print_walk_table(units: dict[str, Unit], steps: list[dict]) -> None:
    """One line per step: path, expect, then subset=version:weight for each destination."""
    for step in steps:
        dests = route_versions(units[f"kustomize/{step['path']}"])
        cells = " ".join(f"{sub}={ver}:{int(w)}" for sub, ver, w in dests)
        print(f"{step['path']}\t{step['expect']}\t{cells}")


def main(argv: list[str]) -> int:
    schema_dir = Path(os.environ.get("TCP_CANARY_SCHEMAS", ROOT.parent / "shared" / "schemas"))
    crds = load_crd_schemas(schema_dir)
    readme_path = DEPLOY / "README.md"
    readme = readme_path.read_text() if readme_path.exists() else ""
    with tempfile.TemporaryDirectory(prefix="tcp-canary-deploy-") as tmp:
        units, steps = render_all(Path(tmp))
    if "--walk-table" in argv:
        print_walk_table(units, steps)
        return 0
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
            caught, missed = self_test(units, steps, crds, readme)
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
