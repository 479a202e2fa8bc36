# syntax=docker/dockerfile:1
#
# The autoscale images, for users with a registry (BuildKit):
#
#   docker build -t autoscale .                            # the daemon: distroless, nonroot, docker CLI + compose
#   docker build --target autoscale-ansible -t autoscale:ansible .   # the same plus ansible-core (python slim)
#   docker build --target autoscale-swarm -t autoscale:swarm .       # autoscale alone: Swarm over the Engine API
#   docker build --target webapp -t autoscale-webapp .     # the demo webapp
#   docker build --target loadgen -t autoscale-loadgen .   # the demo load generator
#   docker build --target prometheus -t autoscale-prometheus .   # the demo's Prometheus (prom/prometheus)
#
# docker-compose.yml builds the last four and the default one through `build:`. scripts/build-images produces the same images
# (same user, entrypoints, ports, healthchecks and paths) without any registry, from the host's binaries;
# examples/README.md says which of them was measured.

ARG RUST_VERSION=1.95
# The docker CLI and the compose v2 plugin the compose and swarm scalers run (static binaries).
ARG DOCKER_CLI_IMAGE=docker:28-cli
ARG COMPOSE_IMAGE=docker/compose-bin:v2.36.2
ARG PROMETHEUS_IMAGE=prom/prometheus:v2.55.1

FROM ${DOCKER_CLI_IMAGE} AS docker-cli
FROM ${COMPOSE_IMAGE} AS compose-plugin

# The demo's Prometheus as published (scripts/build-images makes local/autoscale-prometheus from the host's
# binary instead): data in /prometheus, the configuration docker-compose.yml mounts at
# /etc/prometheus/prometheus.yml.
FROM ${PROMETHEUS_IMAGE} AS prometheus

# ---- build ----------------------------------------------------------------------------------------------

FROM rust:${RUST_VERSION}-slim-bookworm AS plan
WORKDIR /src
COPY . .
# Manifests, Cargo.lock and empty target stubs only: the output (and so the dependency layer below) changes
# only when a manifest or the lock file does.
RUN sh docker/cargo-stubs.sh /src /plan

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
ARG CARGO_BINS="-p autoscale-bin --bin autoscale -p autoscale-examples --bin webapp --bin loadgen"
COPY --from=plan /plan ./
# The dependencies, compiled against the stubs: a cached layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked ${CARGO_BINS}
COPY . .
# COPY keeps the sources' own (older) modification times, which cargo would take for "built already" after
# the stub build: touch them so the workspace's crates are compiled for real.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    find . -name '*.rs' -not -path './target/*' -exec touch {} + \
    && cargo build --release --locked ${CARGO_BINS} \
    && mkdir -p /out/bin /out/state \
    && cp target/release/autoscale target/release/webapp target/release/loadgen /out/bin/

# ---- the demo ---------------------------------------------------------------------------------------------

FROM gcr.io/distroless/cc-debian12:nonroot AS webapp
COPY --from=builder /out/bin/webapp /usr/local/bin/webapp
# Bridge networks: every replica listens on its own IP. Host networking sets WEBAPP_PORTS instead, which
# takes precedence; the healthcheck finds the port the replica bound in WEBAPP_ADDR_FILE.
ENV WEBAPP_LISTEN=0.0.0.0:8080 \
    WEBAPP_ADDR_FILE=/tmp/webapp.addr
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["webapp", "healthcheck"]
ENTRYPOINT ["webapp"]

FROM gcr.io/distroless/cc-debian12:nonroot AS loadgen
COPY --from=builder /out/bin/loadgen /usr/local/bin/loadgen
ENV LOAD_TARGETS=webapp:8080
USER 65532:65532
ENTRYPOINT ["loadgen"]

# ---- autoscale with ansible-core ----------------------------------------------------------------------------

FROM python:3.12-slim-bookworm AS autoscale-ansible
ARG ANSIBLE_CORE_VERSION=2.19.*
# ansible-core in a virtualenv ([service.scaler] virtualenv = "/opt/ansible", or put it on PATH as here).
RUN python -m venv /opt/ansible \
    && /opt/ansible/bin/pip install --no-cache-dir "ansible-core==${ANSIBLE_CORE_VERSION}" \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot
ENV PATH=/opt/ansible/bin:$PATH
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=compose-plugin /docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
COPY --from=builder /out/bin/autoscale /usr/local/bin/autoscale
COPY --from=builder --chown=65532:65532 /out/state /var/lib/autoscale
WORKDIR /var/lib/autoscale
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["autoscale", "healthcheck"]
ENTRYPOINT ["autoscale"]
CMD ["run"]

# ---- autoscale for Swarm alone -------------------------------------------------------------------------------

# Status reads and Swarm scaling go through the Docker Engine API, so a Swarm-only daemon needs no docker CLI
# and no Compose: the binary, the C runtime and CA certificates (about 19.5 MB). It cannot scale compose services.
FROM gcr.io/distroless/cc-debian12:nonroot AS autoscale-swarm
COPY --from=builder /out/bin/autoscale /usr/local/bin/autoscale
COPY --from=builder --chown=65532:65532 /out/state /var/lib/autoscale
WORKDIR /var/lib/autoscale
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["autoscale", "healthcheck"]
ENTRYPOINT ["autoscale"]
CMD ["run"]

# ---- autoscale (the default target) -----------------------------------------------------------------------

FROM gcr.io/distroless/cc-debian12:nonroot AS autoscale
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=compose-plugin /docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
COPY --from=builder /out/bin/autoscale /usr/local/bin/autoscale
# ./autoscale-state (the default state_dir) lands in a directory nonroot owns.
COPY --from=builder --chown=65532:65532 /out/state /var/lib/autoscale
WORKDIR /var/lib/autoscale
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["autoscale", "healthcheck"]
ENTRYPOINT ["autoscale"]
CMD ["run"]
