# The runtime settings of local/autoscale-prometheus, on the rootfs scripts/build-images imports (the host's
# prometheus binary, its shared libraries and web assets, /etc/passwd with nonroot = 65532). No registry is
# needed. The root Dockerfile's `prometheus` target is the official image instead, for users with a registry;
# both keep their data in /prometheus and read /etc/prometheus/prometheus.yml.
ARG ROOTFS=local/autoscale-prometheus-rootfs:dev
FROM ${ROOTFS}
WORKDIR /prometheus
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
LABEL org.opencontainers.image.title="autoscale-prometheus" \
      org.opencontainers.image.description="Prometheus for the autoscale demo, from the build host's binary"
