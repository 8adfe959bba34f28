# The checker image: FROM scratch, one static binary, nothing else. Build it with
# `deploy/docker/build checker`; nothing is pulled. The entrypoint is the binary, so
# `docker run IMAGE verify --target HOST:PORT --expect one=90,two=10` works as the CLI.
FROM scratch

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/tcp-canary/tcp-canary
ARG CREATED=unknown

LABEL org.opencontainers.image.title="checker" \
      org.opencontainers.image.description="Verifies that live TCP traffic follows the expected canary weights" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY checker /checker

USER 65532:65532

ENTRYPOINT ["/checker"]
CMD ["--help"]
