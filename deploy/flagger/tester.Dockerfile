# The Flagger webhook tester: Flagger's load tester (bash, kubectl, its webhook server)
# with the checker added. Build the checker image first (deploy/docker/build), then:
#   docker build -f deploy/flagger/tester.Dockerfile -t tcp-canary/flagger-tester:0.1.0 deploy/flagger
# The checker binary is statically linked (its image is FROM scratch), so it runs on
# the tester's Alpine base as it is.
ARG CHECKER_IMAGE=tcp-canary/checker:0.1.0
ARG LOADTESTER_IMAGE=ghcr.io/fluxcd/flagger-loadtester:0.38.0

FROM ${CHECKER_IMAGE} AS checker

FROM ${LOADTESTER_IMAGE}
COPY --from=checker /checker /usr/local/bin/checker
