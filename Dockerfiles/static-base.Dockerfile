# The local stand-in for gcr.io/distroless/static-debian12:nonroot, for machines
# that cannot pull it (hack/images.sh builds it as localhost/itemq-static-base
# and passes it as BASE to the Go-only images). FROM scratch plus what those
# images need from a base: /etc/passwd and /etc/group with root, nobody and
# nonroot (65532), the build host's CA certificates, /etc/nsswitch.conf, a
# world-writable /tmp and nonroot's home. The context is staged by hack/images.sh
# from images/rootfs/.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 home/ /home/
USER 65532:65532
