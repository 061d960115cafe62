# The runtime image of one binary, on the registry-free Debian base (deploy/images/build.sh makes
# the base with debootstrap and the build context: the host's release binary as `app` and, for
# the photo service, its model and location data as `data/`). The runtime stage of
# deploy/docker/Dockerfile is the same from its FROM on (check-deploy.sh compares them), so both
# paths give the same users, paths, healthcheck and environment.
ARG BASE=xintu/debian:bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin xintu \
    && mkdir -p /var/lib/xintu/edits && chown 10001:10001 /var/lib/xintu/edits
COPY app /usr/local/bin/app
COPY data /opt/xintu/data
# The binaries look for models/ and geo/ under XINTU_DATA_DIR when no path is configured.
ENV LOG_FORMAT=json XINTU_DATA_DIR=/opt/xintu/data
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve"]
# Each binary's own probe (gRPC health for the services, GET /healthz for the gateway).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/app", "healthcheck"]
