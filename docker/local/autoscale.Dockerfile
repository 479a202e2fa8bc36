# The runtime settings of local/autoscale, on the rootfs scripts/build-images imports (the release binary,
# the shared libraries ldd lists, /etc/passwd with nonroot = 65532, CA certificates). No registry is needed:
# the base image is local. The root Dockerfile builds the same image from official base images.
ARG ROOTFS=local/autoscale-rootfs:dev
FROM ${ROOTFS}
# The docker CLI the compose and swarm scalers run (copied from the build host when it has one), and the
# host's Docker Compose: the v2 plugin in cli-plugins/, or in compose/ (at the same paths as on the host) a
# `docker-compose` binary, or v1's Python script with its interpreter and packages.
COPY cli/ /usr/local/bin/
COPY cli-plugins/ /usr/local/lib/docker/cli-plugins/
COPY compose/ /
# ./autoscale-state (the default state_dir) lands in a directory nonroot owns.
WORKDIR /var/lib/autoscale
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["autoscale", "healthcheck"]
ENTRYPOINT ["autoscale"]
CMD ["run"]
LABEL org.opencontainers.image.title="autoscale" \
      org.opencontainers.image.description="Scales Docker Compose, Swarm and Ansible services on Prometheus metrics"
