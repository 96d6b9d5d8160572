# itemq-manager: a static Go binary on a distroless-style static base (no shell),
# running as nonroot (65532), with a read-only root filesystem (it writes
# nowhere but its declared volumes). No HEALTHCHECK: probe /healthz and /readyz.
# Build with `make images` (hack/images.sh), which stages the context:
#   bin/itemq-manager   the binary from ./manager, static, version stamped by -ldflags
#   bin/itemq           the itemq command (kubectl exec … -- itemq jobs talks to
#                       the manager on 127.0.0.1:8081)
ARG BASE=gcr.io/distroless/static-debian12:nonroot
FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/itemq/itemq
ARG LICENSES=Apache-2.0
LABEL org.opencontainers.image.title="itemq-manager" \
      org.opencontainers.image.description="The itemq queue manager: one job per work item, through local processes, containers or Kubernetes Jobs" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --chmod=0555 bin/itemq-manager /usr/bin/itemq-manager
COPY --chmod=0555 bin/itemq /usr/bin/itemq
# The status API listens on 127.0.0.1:8081 unless MANAGER_ADDR says otherwise
# (MANAGER_ADDR=0.0.0.0:8081 to reach it from outside the pod). The local and
# container runners keep their job records in MANAGER_STATE_DIR: mount a
# volume there (the root filesystem may be read-only).
EXPOSE 8081
USER 65532:65532
ENTRYPOINT ["/usr/bin/itemq-manager"]
