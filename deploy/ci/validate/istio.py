"""Routing cross-checks: Istio (Gateway ports on the ingress gateway Service, subsets,
hosts, weights), Gateway API TCPRoutes, Argo Rollouts' analysis weights, the walk's
split (as the checker derives it) against each step's --expect, and the Harness
renders' weights."""

from __future__ import annotations

import yaml

from .common import (
    DEPLOY,
    Report,
    Unit,
    by_kind,
    is_echo_server,
    parse_expect,
    pod_label_sets,
    selects,
    shares,
)
from .checker import derived_split
from .server import server_version


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
                if subset is None:
                    # Routed by host (Flagger's NAME-primary/NAME-canary): no subset to find.
                    continue
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


def check_walk(units: dict[str, Unit], steps: list[dict], readme: str, rep: Report) -> None:
    """Each step's render must route what its `expect` says: the split is the checker's
    own derivation (`checker lint --output json`), not one made here."""
    for step in steps:
        unit = units.get(f"kustomize/{step['path']}")
        where = f"walk step '{step['name']}' ({step['path']})"
        if not rep.check(unit is not None, where, "not rendered"):
            continue
        got, why = derived_split(unit)
        if not rep.check(got is not None, where, why):
            continue
        want = shares(parse_expect(step["expect"]))
        ok = all(abs(got.get(v, 0) - want.get(v, 0)) < 1e-6 for v in set(got) | set(want))
        rep.check(ok, where, f"the checker derives {got} from the render, the step expects --expect {step['expect']}")
        rep.check(
            f"--expect {step['expect']}" in readme,
            where,
            f"deploy/README.md does not show the checker command with --expect {step['expect']}",
        )


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
