"""The metrics path (not routing): deploy/watch runs `checker watch --metrics-listen`
on its container port, with its expectation file from a ConfigMap in the render; every
Prometheus query of Flagger's MetricTemplates and Argo's AnalysisTemplates names only
metrics the checker serves (the README's metric table) and selects the watch's job;
every Canary metric names a MetricTemplate of its render.

The queries themselves run against a real Prometheus scraping a real watch in
checker/tests/prometheus.rs, which reads them from these manifests."""

from __future__ import annotations

import ipaddress
import posixpath
import re

from .common import ROOT, Report, Unit, by_kind, name_of

WATCH_SERVICE = "tcp-canary-watch"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def served_metrics() -> set[str]:
    """The metric names in the README's table of `checker watch --metrics-listen`."""
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(tcp_canary_[a-z_]+)`", text, re.M))


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_watch(unit: Unit, rep: Report) -> None:
    """The watch Deployment's flags agree with its ports, probes and volumes."""
    configmaps = by_kind(unit, "ConfigMap")
    for name, dep in by_kind(unit, "Deployment").items():
        pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in pod.get("containers") or []:
            args = [str(a) for a in c.get("args") or []]
            if not args or args[0] != "watch":
                continue
            cw = f"{unit.name} Deployment/{name} container {c.get('name')}"
            listen = _arg(args, "--metrics-listen")
            if not rep.check(listen is not None, cw, "checker watch without --metrics-listen serves no metrics"):
                continue
            host, _, port = listen.rpartition(":")
            try:
                ip = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                ip = None
            rep.check(
                ip is not None and not ip.is_loopback,
                cw,
                f"--metrics-listen {listen}: in a pod it must be an IP written out that Prometheus can reach (0.0.0.0:PORT)",
            )
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            rep.check(
                str(ports.get("http-metrics")) == port,
                cw,
                f"--metrics-listen port {port} is not the container port http-metrics ({ports.get('http-metrics')})",
            )
            for probe in ("readinessProbe", "livenessProbe"):
                get = (c.get(probe) or {}).get("httpGet") or {}
                rep.check(
                    get.get("path") == "/healthz" and get.get("port") in ("http-metrics", ports.get("http-metrics")),
                    cw,
                    f"{probe} must GET /healthz on the metrics port",
                )
            path = _arg(args, "--expect-file")
            if not rep.check(path is not None, cw, "no --expect-file: the watch cannot follow the steps"):
                continue
            mounts = {m.get("name"): m.get("mountPath") for m in c.get("volumeMounts") or []}
            volumes = {v.get("name"): v for v in pod.get("volumes") or []}
            found = None
            for vol, mount in mounts.items():
                if mount and posixpath.dirname(path) == mount.rstrip("/"):
                    found = ((volumes.get(vol) or {}).get("configMap") or {}).get("name")
            cm = configmaps.get(found or "")
            key = posixpath.basename(path)
            rep.check(
                cm is not None and key in (cm.get("data") or {}),
                cw,
                f"--expect-file {path} is not the key {key} of a ConfigMap mounted from this render",
            )


def _queries(unit: Unit) -> list[tuple[str, str]]:
    """(where, query) of every Prometheus query in the unit's analysis templates."""
    out = []
    for name, mt in by_kind(unit, "MetricTemplate", "flagger.app/").items():
        out.append((f"{unit.name} MetricTemplate/{name}", str((mt.get("spec") or {}).get("query", ""))))
    for name, at in by_kind(unit, "AnalysisTemplate", "argoproj.io/").items():
        for m in (at.get("spec") or {}).get("metrics") or []:
            prom = (m.get("provider") or {}).get("prometheus")
            if prom:
                out.append((f"{unit.name} AnalysisTemplate/{name} metric {m.get('name')}", str(prom.get("query", ""))))
    return out


def check_queries(unit: Unit, rep: Report, served: set[str]) -> None:
    for where, query in _queries(unit):
        names = set(re.findall(r"\btcp_canary_[a-z_]+", query))
        rep.check(bool(names), where, "the query reads no metric of checker watch")
        for n in sorted(names):
            base = next((n[: -len(s)] for s in HISTOGRAM_SUFFIXES if n.endswith(s) and n[: -len(s)] in served), n)
            rep.check(base in served, where, f"{n}: the checker does not serve it (README's metric table)")
        for job in re.findall(r'job="([^"]*)"', query):
            rep.check(job == WATCH_SERVICE, where, f'job="{job}" is not the watch\'s ({WATCH_SERVICE})')
    templates = by_kind(unit, "MetricTemplate", "flagger.app/")
    for name, canary in by_kind(unit, "Canary", "flagger.app/").items():
        for m in ((canary.get("spec") or {}).get("analysis") or {}).get("metrics") or []:
            ref = (m.get("templateRef") or {}).get("name")
            if ref:
                rep.check(ref in templates, f"{unit.name} Canary/{name}", f"metric {m.get('name')}: MetricTemplate {ref} is not in this render")


def check_metrics(units: dict[str, Unit], rep: Report) -> None:
    served = served_metrics()
    rep.check(bool(served), "README.md", "no table of the metrics checker watch serves")
    for unit in units.values():
        check_watch(unit, rep)
        check_queries(unit, rep, served)
    rep.check(
        any(name_of(d) == WATCH_SERVICE for u in units.values() for d in u.docs if d.get("kind") == "Service"),
        "deploy/watch",
        f"no Service {WATCH_SERVICE} for Prometheus to scrape",
    )
