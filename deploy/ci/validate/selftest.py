"""The self-test: breaks copies of the renders on purpose, one thing each, and asserts
that the checks report each breakage (so they can fail)."""

from __future__ import annotations

import copy

from .common import name_of


def mutate(units, key, kind, name, fn):
    """A deep copy of the units with fn applied to one document."""
    out = copy.deepcopy(units)
    for d in out[key].docs:
        if d.get("kind") == kind and name_of(d) == name:
            fn(d)
            return out
    raise RuntimeError(f"self-test: {key} has no {kind}/{name}")


def self_test(units, steps, crds, readme, run_checks) -> tuple[int, list[str]]:
    """Each case breaks one thing; `run_checks` must report it (and only break there)."""
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

    def env_long_shutdown(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = [a for a in c["args"] if not a.startswith("--shutdown-timeout")]
        c["env"] = [{"name": "ECHO_SERVER_SHUTDOWN_TIMEOUT", "value": "45s"}]

    def refused_args(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"] += ["--max-line=0"]

    def other_admin_port(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"] += ["--admin-port", "9902"]

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

    def canary_answers_stable(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"][1] = "one"

    def missing_gateway(d):
        d["spec"]["gateways"] = ["tcp-echo-gw"]

    def flagger_weights(d):
        d["spec"]["tcp"][0]["route"][0]["weight"] = 70
        d["spec"]["tcp"][0]["route"][1]["weight"] = 30

    def canary_http(d):
        del d["spec"]["service"]["appProtocol"]

    def primary_answers_release(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"][1] = "two"

    def primary_selects_canary(d):
        d["spec"]["selector"] = {"app.kubernetes.io/name": "tcp-echo"}

    def tester_port_name(d):
        d["spec"]["ports"][0]["name"] = "web"

    def tls_not_passthrough(d):
        d["spec"]["servers"][0]["tls"] = {"mode": "SIMPLE", "credentialName": "tcp-echo-tls"}

    def tcp_beside_tls(d):
        d["spec"]["tcp"] = [{
            "match": [{"port": 443}],
            "route": [{"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "stable"}}],
        }]

    def tlsroute_other_hostname(d):
        d["spec"]["hostnames"] = ["tcp-echo.example.org"]

    def tlsroute_unknown(d):
        d["spec"]["hostname"] = "tcp-echo.example.com"

    ex = "flagger/generated/canary-20.yaml"
    tls_istio, tls_api = "tls-passthrough/istio", "tls-passthrough/gateway-api"
    cases = [
        ("Service port not named tcp", k10, "Service", "tcp-echo", rename_port, "named tcp"),
        ("Service port without appProtocol", k10, "Service", "tcp-echo", drop_app_protocol, "appProtocol"),
        ("unknown field in a VirtualService", k10, "VirtualService", "tcp-echo", unknown_field, "weigth"),
        ("route to a missing subset", k10, "VirtualService", "tcp-echo", wrong_subset, "IST0101"),
        ("subset selecting no pods", k10, "DestinationRule", "tcp-echo", subset_no_pods, "IST0173"),
        ("Gateway port not on the gateway Service", k10, "Gateway", "tcp-echo-gateway", gateway_port, "IST0162"),
        ("Gateway port with protocol HTTP", k10, "Gateway", "tcp-echo-gateway", http_protocol, "checker lint TC108"),
        ("walk weights differ from the step", k10, "VirtualService", "tcp-echo", weights_swapped, "checker lint TC127"),
        ("tcpSocket readiness probe", k10, "Deployment", "tcp-echo-canary", tcp_probe, "tcpSocket"),
        ("grace period shorter than shutdown", k10, "Deployment", "tcp-echo-stable", short_grace, "terminationGracePeriodSeconds"),
        ("`--shutdown-timeout 40s` (spaced) beyond the grace period", k10, "Deployment", "tcp-echo-canary", spaced_long_shutdown, "must exceed --shutdown-timeout 40"),
        ("ECHO_SERVER_SHUTDOWN_TIMEOUT in env beyond the grace period", k10, "Deployment", "tcp-echo-stable", env_long_shutdown, "must exceed --shutdown-timeout 45"),
        ("args the echo-server refuses", k10, "Deployment", "tcp-echo-canary", refused_args, "refuses its args/env: echo-server: --max-line"),
        ("--admin-port other than the probes' port", k10, "Deployment", "tcp-echo-stable", other_admin_port, "the probes use 9901"),
        ("writable root filesystem", k10, "Deployment", "tcp-echo-stable", writable_root, "readOnlyRootFilesystem"),
        ("no resource limits", k10, "Deployment", "tcp-echo-stable", no_limits, "resources.limits"),
        ("unknown field in a Deployment", k10, "Deployment", "tcp-echo-stable", unknown_builtin_field, "readinesProbe"),
        ("checker Job inside the mesh", "jobs/checker-job.yaml", "Job", "tcp-echo-check-*", job_in_mesh, "sidecar.istio.io/inject"),
        ("Argo analysis weights differ from setWeight", "argo-rollouts/release-two", "Rollout", "tcp-echo", argo_weight, "setWeight"),
        ("TCPRoute weights not the documented split", "gateway-api/v1", "TCPRoute", "tcp-echo", tcproute_weight, "checker lint TC127"),
        ("unknown field in a TCPRoute", "gateway-api/v1alpha2", "TCPRoute", "tcp-echo", tcproute_unknown, "weights"),
        ("unknown field in a Rollout's pod template", "argo-rollouts/base", "Rollout", "tcp-echo", rollout_unknown, "imagePullPolicyy"),
        ("unknown field in a Gateway API listener", "gateway-api/v1", "Gateway", "tcp-echo-gateway", listener_unknown, "hostnames"),
        ("Harness render with wrong weights", "harness canary=10 stable=90", "VirtualService", "tcp-echo", harness_weight, "rendered weights"),
        ("walk canary answering the stable's version", k10, "Deployment", "tcp-echo-canary", canary_answers_stable, "the route sends one=100,"),
        ("VirtualService bound to a Gateway not in the render (checker lint)", k10, "VirtualService", "tcp-echo", missing_gateway, "checker lint TC107"),
        ("Flagger example's weights not the Canary's status", ex, "VirtualService", "tcp-echo", flagger_weights, "is not what Flagger generates"),
        ("Flagger Canary without appProtocol TCP (checker lint)", "flagger/release-two", "Canary", "tcp-echo", canary_http, "checker lint TC117"),
        ("Flagger primary answering the release's version", ex, "Deployment", "tcp-echo-primary", primary_answers_release, "the route sends two=100,"),
        ("Flagger primary Service selecting the canary's pods", ex, "Service", "tcp-echo-primary", primary_selects_canary, "checker lint TC127"),
        ("Flagger tester's HTTP port not named for its protocol", "flagger/base", "Service", "tcp-canary-tester", tester_port_name, "must be named after its appProtocol"),
        ("tls route on a Gateway server not in PASSTHROUGH mode (checker lint)", tls_istio, "Gateway", "tcp-echo-gateway", tls_not_passthrough, "checker lint TC128"),
        ("tcp route beside the tls route on the PASSTHROUGH port (checker lint)", tls_istio, "VirtualService", "tcp-echo", tcp_beside_tls, "checker lint TC131"),
        ("TLSRoute hostname outside its listener's (checker lint)", tls_api, "TLSRoute", "tcp-echo", tlsroute_other_hostname, "checker lint TC132"),
        ("unknown field in a TLSRoute (TCPRoute's schema with hostnames)", tls_api, "TLSRoute", "tcp-echo", tlsroute_unknown, "'hostname' was unexpected"),
    ]
    def metrics_port(d):
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        args[args.index("--metrics-listen") + 1] = "0.0.0.0:9465"

    def misspelled_metric(d):
        d["spec"]["query"] = d["spec"]["query"].replace("tcp_canary_agreement", "tcp_canary_agrement")

    def missing_template(d):
        d["spec"]["analysis"]["metrics"][0]["templateRef"]["name"] = "tcp-canary-splitt"

    cases += [
        ("watch --metrics-listen not on its container port", "watch", "Deployment", "tcp-canary-watch", metrics_port, "is not the container port http-metrics"),
        ("a Flagger query reading a metric the checker does not serve", "flagger/metrics", "MetricTemplate", "tcp-canary-split", misspelled_metric, "tcp_canary_agrement: the checker does not serve it"),
        ("a Canary metric naming no MetricTemplate of its render", "flagger/metrics", "Canary", "tcp-echo", missing_template, "MetricTemplate tcp-canary-splitt is not in this render"),
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
