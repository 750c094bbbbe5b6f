# syntax=docker/dockerfile:1
# Container images of Tandem, one target each:
#
#   docker build --target server   -t ghcr.io/tandem-dev/tandem-server:0.1.0 .
#   docker build --target operator -t ghcr.io/tandem-dev/tandem-operator:0.1.0 .
#
# Tag both with the workspace version (Cargo.toml), which is the chart's appVersion: the chart
# runs the operator image of its appVersion and passes it the server image of the same tag
# (`--server-image`), so one release always pairs an operator with its own server.

ARG RUST_VERSION=1.95
# Keep equal to the workspace version (a chart test checks it).
ARG VERSION=0.1.0

# ---- build ----------------------------------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS source
WORKDIR /src
COPY . .

FROM source AS build-server
RUN cargo build --release --locked -p tandem-server --bin tandem-server \
 && install -D -m 0755 target/release/tandem-server /out/tandem-server \
 && mkdir -p /out/data

FROM source AS build-operator
RUN cargo build --release --locked -p tandem-operator --bin tandem-operator \
 && install -D -m 0755 target/release/tandem-operator /out/tandem-operator

# ---- runtime ----------------------------------------------------------------------------
# distroless/cc: glibc and libgcc for the Rust binaries, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS server
ARG VERSION
LABEL org.opencontainers.image.title="tandem-server" \
      org.opencontainers.image.description="Redis-compatible server with fork-less snapshots and Redis 7.0 replication" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.url="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Tandem"
COPY --from=build-server /out/tandem-server /usr/local/bin/tandem-server
COPY --from=build-server --chown=10001:10001 /out/data /data
# The uid the operator's pods run the server as (runAsUser 10001, fsGroup 10001).
USER 10001:10001
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/tandem-server"]
CMD ["--dir", "/data"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
ARG VERSION
LABEL org.opencontainers.image.title="tandem-operator" \
      org.opencontainers.image.description="Kubernetes operator for RedisReplicaSet: replicated tandem-server databases tuned from the dataset size" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.url="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Tandem"
COPY --from=build-operator /out/tandem-operator /usr/local/bin/tandem-operator
# distroless's nonroot user; the chart runs it as 65532 too.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tandem-operator"]
CMD ["run"]
