#!/usr/bin/env bash
# Room on disk for the run. A full `make test` writes about 15 GB to the Go
# build cache (race builds of the Kubernetes binaries' dependencies, the
# cross builds, the images' binaries) and podman's vfs storage keeps full
# copies of image layers; on a machine that ran it many times they fill the
# disk, and a test fails far from the cause ("no space left on device" in a
# podman build). When less than ITEMQ_MIN_FREE_GB (default 15) is free
# where the Go build cache lives, this empties that cache (a slower build,
# not a failed one) and removes podman's dangling images, and says so.
source "$(dirname "$0")/../lib.sh"

min=${ITEMQ_MIN_FREE_GB:-15}
cache=$(go env GOCACHE)
mkdir -p "$cache"
free_gb() { df -Pk "$1" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }
free=$(free_gb "$cache")
if [ "$free" -lt "$min" ]; then
  log "only ${free} GB free on the disk of $cache (want $min): emptying the Go build cache"
  go clean -cache
  if command -v podman >/dev/null; then
    podman image prune -f >/dev/null 2>&1 || true
  fi
  log "now $(free_gb "$cache") GB free"
fi
