# itemq-thumbnail: the video thumbnail executor with ffmpeg, on a slim Debian
# base, running as nonroot (65532), no HEALTHCHECK.
#
# BASE defaults to debian:bookworm-slim. Where no image can be pulled,
# hack/images.sh passes the local base localhost/itemq-debian-base:bookworm,
# made from Debian packages by hack/debian-base.sh (images/README.md); ffmpeg is
# then installed from the build host's Debian mirror.
#
# Executors write only under $TMPDIR (default /tmp) and OUTPUT_DIR: with a
# read-only root filesystem give them a writable /tmp (--tmpfs /tmp, or an
# emptyDir on Kubernetes).
#
# hack/images.sh stages the context: bin/ holds itemq-thumbnail and its helpers.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg ca-certificates; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot
# The build args come after the apt layer, so that a new version reuses it.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/itemq/itemq
ARG LICENSES=Apache-2.0
LABEL org.opencontainers.image.title="itemq-thumbnail" \
      org.opencontainers.image.description="itemq executor that extracts thumbnails from one video (WORK_ITEM_FILE) with ffmpeg and uploads them" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --chmod=0555 bin/ /usr/bin/
ENV TMPDIR=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/bin/itemq-thumbnail"]
