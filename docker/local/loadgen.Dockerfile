# The runtime settings of local/autoscale-loadgen, on the rootfs scripts/build-images imports (the release
# binary, its shared libraries, /etc/passwd with nonroot = 65532). No registry is needed.
ARG ROOTFS=local/autoscale-loadgen-rootfs:dev
FROM ${ROOTFS}
ENV LOAD_TARGETS=webapp:8080
USER 65532:65532
ENTRYPOINT ["loadgen"]
LABEL org.opencontainers.image.title="autoscale-loadgen" \
      org.opencontainers.image.description="The autoscale demo load generator: a scripted request rate over the webapp's replicas"
