#!/usr/bin/env bash
# helm, for the chart's tests (deploy/helm): built once from the Go module proxy,
# outside the project's module (helm is not a dependency of itemq), and cached
# under ~/.cache/itemq/helm-<version> (a few minutes cold; much longer on a busy
# machine: here, with four other builds running, it took about 30 minutes).
# Prints ITEMQ_HELM=<path of the binary>.
source "$(dirname "$0")/../lib.sh"

HELM_VERSION=${HELM_VERSION:-4.3.2}
DIR=$ITEMQ_CACHE/helm-$HELM_VERSION
BIN=$DIR/bin/helm

build() {
  [ -x "$BIN" ] && return 0
  log "building helm v$HELM_VERSION (go install, about 3 min cold)"
  mkdir -p "$DIR/bin"
  # go install pkg@version builds in module mode outside any module: the
  # project's go.mod is not touched.
  (cd "$DIR" && CGO_ENABLED=0 GOBIN="$DIR/bin" retry_go go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION")
}

with_lock helm build >&2
"$BIN" version --short >&2
echo "ITEMQ_HELM=$BIN"
