# itemq-bucket: a static Go binary on a distroless-style static base (no shell),
# running as nonroot (65532), with a read-only root filesystem (it writes
# nowhere but its declared volumes). No HEALTHCHECK: probe /healthz and /readyz.
# Build with `make images` (hack/images.sh), which stages the context:
#   bin/itemq-bucket   the binary from ./ambassadors/bucket, static, version stamped by -ldflags
ARG BASE=gcr.io/distroless/static-debian12:nonroot
FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/itemq/itemq
ARG LICENSES=Apache-2.0
LABEL org.opencontainers.image.title="itemq-bucket" \
      org.opencontainers.image.description="The bucket ambassador: serves the v1 item API over the objects of an S3, GCS or Azure Blob bucket (a sidecar of itemq-manager)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --chmod=0555 bin/itemq-bucket /usr/bin/itemq-bucket
# The v1 item API (ITEMQ_ADDR; the ambassadors listen on :8080 by default).
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/bin/itemq-bucket"]
