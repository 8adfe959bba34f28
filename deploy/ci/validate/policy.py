"""Policy: what every workload and Service must carry (labels, security context,
resources, HTTP probes, port names), the echo-server's own settings against its pod
(read by the binary itself through --print-config), and the Harness files' static rules."""

from __future__ import annotations

from .common import (
    ADMIN_PORT,
    DEPLOY,
    HARNESS_STEPS,
    LONG_RUNNING,
    SKIP_FILE_LINE,
    Report,
    Unit,
    by_kind,
    ident,
    is_echo_server,
    pod_label_sets,
    pod_templates,
    selects,
)
from .server import server_config


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
    config, refusal = server_config(c)
    if not rep.check(config is not None, cw, f"the echo-server refuses its args/env: {refusal}"):
        return
    version = config["version"]
    label = ((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels", {})
    if "app.kubernetes.io/version" in label and "{{" not in version:
        rep.check(
            label["app.kubernetes.io/version"] == version,
            cw,
            f"label app.kubernetes.io/version={label['app.kubernetes.io/version']} but the server answers as {version}",
        )
    rep.check(
        config["admin_port"] == ADMIN_PORT,
        cw,
        f"the server's admin port is {config['admin_port']}, the probes use {ADMIN_PORT}",
    )
    container_ports = set(ports.values())
    rep.check(
        all(p in container_ports for p in config["ports"]),
        cw,
        f"the server listens on {config['ports']}, not all of them container ports {sorted(container_ports)}",
    )
    a = {"drain": config["drain_delay_seconds"], "shutdown": config["shutdown_timeout_seconds"]}
    rep.check(a["drain"] < a["shutdown"], cw, "--drain-delay must be shorter than --shutdown-timeout")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    rep.check(
        grace > a["shutdown"],
        cw,
        f"terminationGracePeriodSeconds {grace} must exceed --shutdown-timeout {a['shutdown']}s "
        "(else SIGKILL cuts connections the server is still finishing)",
    )


def check_services(unit: Unit, rep: Report) -> None:
    pods = pod_label_sets(unit)
    for name, svc in by_kind(unit, "Service").items():
        where = f"{unit.name} Service/{name}"
        spec = svc.get("spec") or {}
        matched = [p for p in pods if selects(spec.get("selector") or {}, p[2])]
        rep.check(bool(matched), where, "the selector selects the pods of no workload in this render")
        echo = any(is_echo_server(c) for _, podspec, _ in matched for c in podspec.get("containers") or [])
        for port in spec.get("ports") or []:
            pn = str(port.get("name", ""))
            proto = str(port.get("appProtocol", ""))
            if echo:
                rep.check(pn == "tcp" or pn.startswith("tcp-"), where, f"port {port.get('port')} must be named tcp or tcp-* (IST0118)")
                # Istio reads appProtocol case-insensitively; Flagger copies `TCP` from the Canary.
                rep.check(proto.lower() == "tcp", where, f"port {pn} needs appProtocol: tcp")
            else:
                # Not the echo service (the Flagger tester's webhook port): its protocol
                # must still be explicit, in the name and in appProtocol alike.
                rep.check(
                    bool(proto) and (pn == proto.lower() or pn.startswith(proto.lower() + "-")),
                    where,
                    f"port {pn} must be named after its appProtocol ({proto or 'none'}) (IST0118)",
                )
            target = port.get("targetPort", port.get("port"))
            for _, podspec, _ in matched:
                cports = [p for c in podspec.get("containers") or [] for p in c.get("ports") or []]
                ok = any(
                    (p.get("name") == target if isinstance(target, str) else p.get("containerPort") == target)
                    for p in cports
                )
                rep.check(ok, where, f"targetPort {target} is not a container port of the selected pods")


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
