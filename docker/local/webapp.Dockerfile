# The runtime settings of local/autoscale-webapp, on the rootfs scripts/build-images imports (the release
# binary, its shared libraries, /etc/passwd with nonroot = 65532). No registry is needed.
ARG ROOTFS=local/autoscale-webapp-rootfs:dev
FROM ${ROOTFS}
# Bridge networks: every replica listens on its own IP. Host networking sets WEBAPP_PORTS instead, which
# takes precedence; the healthcheck finds the port the replica bound in WEBAPP_ADDR_FILE.
ENV WEBAPP_LISTEN=0.0.0.0:8080 \
    WEBAPP_ADDR_FILE=/tmp/webapp.addr
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["webapp", "healthcheck"]
ENTRYPOINT ["webapp"]
LABEL org.opencontainers.image.title="autoscale-webapp" \
      org.opencontainers.image.description="The autoscale demo service: a capacity-bound webapp with Prometheus metrics"
