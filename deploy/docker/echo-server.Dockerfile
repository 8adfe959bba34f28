# The echo-server image: FROM scratch, one static binary, nothing else (no shell, no
# package manager, no libc). Build it with `deploy/docker/build echo-server`, which
# compiles the static binary and passes it in as the build context: nothing is pulled.
#
# Istio's sample arguments work unchanged: `docker run IMAGE 9000,9001 one`, or any of
# the binary's named flags (`--help`). With no arguments it runs the default CMD below.
FROM scratch

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/tcp-canary/tcp-canary
ARG CREATED=unknown

LABEL org.opencontainers.image.title="echo-server" \
      org.opencontainers.image.description="Versioned TCP echo server, a drop-in for Istio's tcp-echo sample" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY echo-server /echo-server

# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532

# 9000 and 9001: the echo ports of the default CMD (Istio's sample uses the same two).
# 9901: the admin HTTP port (/healthz /readyz /version /metrics).
EXPOSE 9000 9001 9901

ENTRYPOINT ["/echo-server"]
# Istio's sample image runs `9000 hello`; ours answers on both sample ports as `one`.
CMD ["9000,9001", "one"]
