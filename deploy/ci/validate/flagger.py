"""Flagger: the generated example (deploy/flagger/generated/canary-20.yaml, what the
Canary's rollout webhook reads mid-analysis) must be what Flagger generates from
deploy/flagger's Canary and Deployments, and the split it routes is the one the Canary's
status says: the primary's version at 100 - canaryWeight, the target's at canaryWeight
(`checker lint --expect` checks it; the Canary's routing rules are the checker's too)."""

from __future__ import annotations

import copy

from .common import Report, Unit, is_echo_server, name_of
from .server import server_version

BASE = "flagger/base"
RELEASE = "flagger/release-two"
EXAMPLE = "flagger/generated/canary-20.yaml"
# Flagger's default selector labels (-selector-labels), in the order it tries them.
SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")


def _get(unit: Unit, kind: str, name: str) -> dict | None:
    return next((d for d in unit.docs if d.get("kind") == kind and name_of(d) == name), None)


def _owned_by(doc: dict, canary: str) -> bool:
    return any(
        r.get("kind") == "Canary" and r.get("name") == canary and r.get("controller")
        for r in (doc.get("metadata") or {}).get("ownerReferences") or []
    )


def _as_applied(doc: dict) -> dict:
    """The document without what the API server adds (status, metadata.uid)."""
    out = {k: v for k, v in doc.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (doc.get("metadata") or {}).items() if k != "uid"}
    return out


def _version(deployment: dict | None) -> str | None:
    containers = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return next((server_version(c) for c in containers if is_echo_server(c)), None)


def expected_generated(canary: dict, target: dict, weight: int) -> dict[tuple[str, str], dict]:
    """(kind, name) -> spec of what Flagger's Istio router and Deployment controller
    write for `canary` at canary weight `weight`, `target` being the promoted spec."""
    spec = canary.get("spec") or {}
    svc = spec.get("service") or {}
    apex = svc.get("name") or spec["targetRef"]["name"]
    primary, canary_name = f"{apex}-primary", f"{apex}-canary"
    match_labels = ((target.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    label = next((k for k in SELECTOR_LABELS if k in match_labels), None)
    if label is None:
        raise RuntimeError(f"the target's selector.matchLabels has none of Flagger's selector labels {SELECTOR_LABELS}")
    value = match_labels[label]
    port = {"name": svc.get("portName") or "http", "protocol": "TCP", "port": svc["port"],
            "targetPort": svc.get("targetPort", svc["port"])}
    if svc.get("appProtocol"):
        port["appProtocol"] = svc["appProtocol"]

    def service(selects: str) -> dict:
        return {"type": "ClusterIP", "selector": {label: selects}, "ports": [dict(port)]}

    hosts = list(svc.get("hosts") or [])
    if not any(h in (apex, "*") for h in hosts):
        hosts.append(apex)
    gateways = list(svc.get("gateways") or []) or ["mesh"]
    route = [{"destination": {"host": primary}, "weight": 100 - weight},
             {"destination": {"host": canary_name}, "weight": weight}]
    # Flagger's weight field is omitempty: a zero weight is left out.
    for r in route:
        if r["weight"] == 0:
            del r["weight"]
    vs = {"hosts": hosts, "gateways": gateways}
    matches = [{"port": m["port"]} for m in svc.get("match") or [] if "port" in m]
    vs["tcp"] = [{"match": matches, "route": route} if matches else {"route": route}]
    deployment = copy.deepcopy(target.get("spec") or {})
    deployment["selector"] = {"matchLabels": {label: f"{value}-primary"}}
    deployment["template"].setdefault("metadata", {}).setdefault("labels", {})[label] = f"{value}-primary"
    out = {
        ("VirtualService", apex): vs,
        ("Service", apex): service(f"{value}-primary"),
        ("Service", primary): service(f"{value}-primary"),
        ("Service", canary_name): service(value),
        ("Deployment", f"{spec['targetRef']['name']}-primary"): deployment,
    }
    for name in (primary, canary_name):
        dr = {"host": name}
        if svc.get("trafficPolicy"):
            dr["trafficPolicy"] = svc["trafficPolicy"]
        out[("DestinationRule", name)] = dr
    return out


def check_flagger(units: dict[str, Unit], rep: Report) -> dict[str, str]:
    """Checks the example against what Flagger generates; returns the split the example
    must route, by unit (for `checker lint --expect`)."""
    base, release, example = units.get(BASE), units.get(RELEASE), units.get(EXAMPLE)
    if not rep.check(None not in (base, release, example), "flagger", f"{BASE}, {RELEASE} and {EXAMPLE} must all render"):
        return {}
    canaries = [d for d in release.docs if d.get("kind") == "Canary"]
    if not rep.check(len(canaries) == 1, RELEASE, "expected one Canary"):
        return {}
    canary = canaries[0]
    name = name_of(canary)
    cspec = canary.get("spec") or {}
    where = f"{RELEASE} Canary/{name}"
    rep.check(cspec.get("provider", "istio") == "istio", where, "provider must be istio")
    hooks = ((cspec.get("analysis") or {}).get("webhooks")) or []
    rollout = [h for h in hooks if h.get("type") == "rollout"]
    rep.check(
        any("checker verify --expect-from" in (h.get("metadata") or {}).get("cmd", "") for h in rollout),
        where,
        "no rollout webhook runs `checker verify --expect-from`",
    )
    target_name = (cspec.get("targetRef") or {}).get("name")
    base_target, new_target = _get(base, "Deployment", target_name), _get(release, "Deployment", target_name)
    if not rep.check(None not in (base_target, new_target), where, f"targetRef Deployment/{target_name} is not rendered"):
        return {}

    # The user's documents in the example are the release's render, unchanged.
    status = {}
    for doc in example.docs:
        ident = f"{EXAMPLE} {doc.get('kind')}/{name_of(doc)}"
        if _owned_by(doc, name):
            continue
        mine = _get(release, doc.get("kind"), name_of(doc))
        if not rep.check(mine is not None, ident, f"is neither Flagger's (owned by Canary/{name}) nor in {RELEASE}"):
            continue
        rep.check(
            _as_applied(doc) == mine,
            ident,
            f"differs from {RELEASE}'s render: Flagger generates the example from it",
        )
        if doc.get("kind") == "Canary":
            status = doc.get("status") or {}
    weight = status.get("canaryWeight")
    analysis = cspec.get("analysis") or {}
    step, top = analysis.get("stepWeight", 0), analysis.get("maxWeight", 100)
    if not rep.check(
        isinstance(weight, int) and step > 0 and weight % step == 0 and 0 <= weight <= top,
        f"{EXAMPLE} Canary/{name}",
        f"status.canaryWeight {weight} must be a step of stepWeight {step} up to maxWeight {top}",
    ):
        return {}

    # Flagger's documents: what its Istio router and Deployment controller write. The
    # primary is the last promoted release (base), its pods relabelled.
    try:
        want = expected_generated(canary, base_target, weight)
    except (KeyError, RuntimeError) as e:
        rep.check(False, where, f"cannot tell what Flagger generates: {e}")
        return {}
    for (kind, gen_name), spec in want.items():
        ident = f"{EXAMPLE} {kind}/{gen_name}"
        doc = _get(example, kind, gen_name)
        if not rep.check(doc is not None and _owned_by(doc, name), ident, f"missing, or not owned by Canary/{name}"):
            continue
        got = copy.deepcopy(doc.get("spec") or {})
        if kind == "Deployment":
            annotations = ((got.get("template") or {}).get("metadata") or {}).get("annotations") or {}
            rep.check("flagger-id" in annotations, ident, "the pod template lacks Flagger's flagger-id annotation")
            annotations.pop("flagger-id", None)
        rep.check(got == spec, ident, f"is not what Flagger generates from Canary/{name} at canary weight {weight}: {spec}")

    # The split the example routes: primary (base's version) and canary (the release's
    # version) at the Canary's weights.
    old, new = _version(base_target), _version(new_target)
    if not rep.check(old != new, where, f"the release answers {new}, as the primary does: nothing tells them apart"):
        return {}
    return {EXAMPLE: f"{old}={100 - weight},{new}={weight}"}
