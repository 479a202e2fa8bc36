# The runtime settings of local/autoscale, on the rootfs scripts/build-images imports (the release binary,
# the shared libraries ldd lists, /etc/passwd with nonroot = 65532, CA certificates). No registry is needed:
# the base image is local. The root Dockerfile builds the same image from official base images.
ARG ROOTFS=local/autoscale-rootfs:dev
FROM ${ROOTFS}
# From the build host, at their paths in the image: the docker CLI the compose and swarm scalers run
# (/usr/local/bin/docker), and Docker Compose: the v2 plugin (/usr/local/lib/docker/cli-plugins), or a
# `docker-compose` binary (/usr/local/bin), or v1's Python script with its interpreter and packages (at the
# host's paths). Empty when the host has neither (AUTOSCALE_IMAGE_DOCKER_CLI= AUTOSCALE_IMAGE_COMPOSE=none).
COPY host/ /
# ./autoscale-state (the default state_dir) lands in a directory nonroot owns.
WORKDIR /var/lib/autoscale
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["autoscale", "healthcheck"]
ENTRYPOINT ["autoscale"]
CMD ["run"]
LABEL org.opencontainers.image.title="autoscale" \
      org.opencontainers.image.description="Scales Docker Compose, Swarm and Ansible services on Prometheus metrics"
