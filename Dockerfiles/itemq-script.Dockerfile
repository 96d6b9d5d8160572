# itemq-script: the executor base image. It holds the script executor (and,
# when the build has them, the itemq command for scripts: itemq blob …) on a
# distroless-style static base: no shell, nonroot (65532), no HEALTHCHECK.
#
# Users build their executor image from it in one of two ways (docs/images.md,
# examples/script-worker/):
#   - FROM itemq/itemq-script and add a script that needs no shell (a static
#     binary), with ENTRYPOINT ["/usr/bin/itemq-script", "--", "/app/work"];
#   - FROM a base with the tools the script needs (debian:bookworm-slim +
#     ImageMagick, python…) and copy the executor in:
#       COPY --from=itemq/itemq-script:TAG /usr/bin/itemq-* /usr/bin/
#
# Executors write only under $TMPDIR (default /tmp) and OUTPUT_DIR: with a
# read-only root filesystem give them a writable /tmp (--tmpfs /tmp, or an
# emptyDir on Kubernetes).
#
# hack/images.sh stages the context: bin/ holds itemq-script and itemq.
ARG BASE=gcr.io/distroless/static-debian12:nonroot
FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/itemq/itemq
ARG LICENSES=Apache-2.0
LABEL org.opencontainers.image.title="itemq-script" \
      org.opencontainers.image.description="itemq executor base image: runs a user's script on one work item (WORK_ITEM_FILE), fetching its input and uploading its results" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --chmod=0555 bin/ /usr/bin/
ENV TMPDIR=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/bin/itemq-script"]
