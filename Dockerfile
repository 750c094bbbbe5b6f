# Container images of Tandem, one target each:
#
#   docker build --target server   -t ghcr.io/tandem-dev/tandem-server:0.1.0 .
#   docker build --target operator -t ghcr.io/tandem-dev/tandem-operator:0.1.0 .
#
# Tag both with the workspace version (Cargo.toml), which is the chart's appVersion: the chart
# runs the operator image of its appVersion and passes it the server image of the same tag
# (`--server-image`), so one release always pairs an operator with its own server.
#
# Those two need BuildKit (Docker's default builder), which builds only the stages a target
# uses. Where no image can be pulled, the `server-prebuilt` and `operator-prebuilt` targets
# take binaries that `cargo build --release` made on a Debian 12 host, from a build context
# holding `tandem-server`, `tandem-operator`, `crdgen` and an empty `data/`; RUNTIME_IMAGE
# names a local runtime base (images/build.sh does both, docs/operations.md). They come first,
# so the classic builder, which builds every stage before its target, builds them too without
# reaching the Rust image. No `# syntax=` line: BuildKit uses its built-in frontend.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
# distroless/cc: glibc and libgcc for the Rust binaries, no shell, no package manager.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# Keep equal to the workspace version (a chart test checks it).
ARG VERSION=0.1.0

# ---- runtime settings, shared by the prebuilt and the compiled targets -------------------
FROM ${RUNTIME_IMAGE} AS server-runtime
ARG VERSION
LABEL org.opencontainers.image.title="tandem-server" \
      org.opencontainers.image.description="Redis-compatible server with fork-less snapshots and Redis 7.0 replication" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.url="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Tandem"
# The uid the operator's pods run the server as (runAsUser 10001, fsGroup 10001).
USER 10001:10001
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/tandem-server"]
CMD ["--dir", "/data"]

FROM ${RUNTIME_IMAGE} AS operator-runtime
ARG VERSION
LABEL org.opencontainers.image.title="tandem-operator" \
      org.opencontainers.image.description="Kubernetes operator for RedisReplicaSet: replicated tandem-server databases tuned from the dataset size" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.url="https://github.com/tandem-dev/tandem" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Tandem"
# distroless's nonroot user; the chart runs it as 65532 too. The image also holds `crdgen`,
# which prints the CRD of this version (`docker run --rm --entrypoint crdgen IMAGE`).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tandem-operator"]
CMD ["run"]

# ---- from host binaries -----------------------------------------------------------------
FROM server-runtime AS server-prebuilt
COPY tandem-server /usr/local/bin/tandem-server
COPY --chown=10001:10001 data /data

FROM operator-runtime AS operator-prebuilt
COPY tandem-operator crdgen /usr/local/bin/

# ---- build ----------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY . .

FROM source AS build-server
RUN cargo build --release --locked -p tandem-server --bin tandem-server \
 && install -D -m 0755 target/release/tandem-server /out/tandem-server \
 && strip --strip-debug /out/tandem-server \
 && mkdir -p /out/data

FROM source AS build-operator
RUN cargo build --release --locked -p tandem-operator --bin tandem-operator --bin crdgen \
 && install -D -m 0755 -t /out target/release/tandem-operator target/release/crdgen \
 && strip --strip-debug /out/tandem-operator /out/crdgen

# ---- compiled in the Rust image ---------------------------------------------------------
FROM server-runtime AS server
COPY --from=build-server /out/tandem-server /usr/local/bin/tandem-server
COPY --from=build-server --chown=10001:10001 /out/data /data

FROM operator-runtime AS operator
COPY --from=build-operator /out/tandem-operator /out/crdgen /usr/local/bin/
