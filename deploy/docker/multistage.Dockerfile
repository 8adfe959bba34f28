# NOT RUNNABLE ON THE PROJECT'S BUILD MACHINE (no image can be pulled there): this is
# the variant for your own CI, which can pull `rust:<version>`. It builds the same
# static binaries inside a builder stage and copies one into `scratch`.
#
#   docker build -f deploy/docker/multistage.Dockerfile --target echo-server \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t tcp-canary/echo-server:0.1.0 .
#   docker build -f deploy/docker/multistage.Dockerfile --target checker \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t tcp-canary/checker:0.1.0 .
#
# Run it from the repository root (the build context is the whole workspace;
# multistage.Dockerfile.dockerignore keeps target/ and .git/ out of it with BuildKit).
# The rust version must be at least the workspace's rust-version (Cargo.toml).

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# glibc, linked statically: the binaries then run in `scratch`, which has no libc.
# (deploy/ci/docker-test shows that host names still resolve in such an image.)
ENV RUSTFLAGS="-C target-feature=+crt-static"
# The context has no .git (see the .dockerignore): echo-server's build.rs takes the
# revision for /version from GIT_REVISION, else it reports `unknown`.
ARG REVISION=unknown
RUN GIT_REVISION="${REVISION}" cargo build --release --locked --target x86_64-unknown-linux-gnu -p echo-server \
 && GIT_REVISION="${REVISION}" cargo build --release --locked --target x86_64-unknown-linux-gnu -p checker --no-default-features \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-gnu/release/echo-server target/x86_64-unknown-linux-gnu/release/checker /out/

FROM scratch AS echo-server
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/tcp-canary/tcp-canary
LABEL org.opencontainers.image.title="echo-server" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/echo-server /echo-server
USER 65532:65532
EXPOSE 9000 9001 9901
ENTRYPOINT ["/echo-server"]
CMD ["9000,9001", "one"]

FROM scratch AS checker
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/tcp-canary/tcp-canary
LABEL org.opencontainers.image.title="checker" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/checker /checker
USER 65532:65532
ENTRYPOINT ["/checker"]
CMD ["--help"]
