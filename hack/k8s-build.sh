#!/usr/bin/env bash
# Builds (once, cached under ~/.cache/itemq/k8s-<versions>/bin) the binaries of the test control
# plane: etcd, kube-apiserver, kube-controller-manager, kubectl (same version, for `apply -k`
# in tests) and kwok, from the Go module proxy.
# Cold: about 15 minutes on 2 cores; warm: instant. Prints the bin directory.
# Recipe: ../shared/recipes/kubernetes-test-cluster.md (etcd 3.5 because Debian's 3.4 lacks
# RequestWatchProgress, which kube-apiserver 1.34 watches need).
source "$(dirname "$0")/lib.sh"

K8S_VERSION=${K8S_VERSION:-1.34.3}
ETCD_VERSION=${ETCD_VERSION:-3.5.21}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
DIR=$ITEMQ_CACHE/k8s-$K8S_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION
BIN=$DIR/bin
export CGO_ENABLED=0

BINARIES="etcd kube-apiserver kube-controller-manager kubectl kwok"

have_all() {
  local b
  [ -f "$BIN/.complete" ] || return 1
  for b in $BINARIES; do [ -x "$BIN/$b" ] || return 1; done
}

build() {
  have_all && return 0
  mkdir -p "$BIN" "$DIR/src/kube" "$DIR/src/etcd"
  local SV="v0.${K8S_VERSION#1.}" MINOR=${K8S_VERSION#1.}
  MINOR=${MINOR%%.*}
  local cmds="" c
  for c in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$c" ] || cmds="$cmds k8s.io/kubernetes/cmd/$c"
  done
  if [ -n "$cmds" ]; then
    log "building$cmds v$K8S_VERSION (about 12 min cold)"
    cd "$DIR/src/kube"
    printf 'module local/kubebuild\n\ngo 1.24.0\n' > go.mod
    local gomod
    gomod=$(retry_go go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    {
      printf 'module local/kubebuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$SV" '{print "\t" $1 " => " $1 " " v}'
      printf ')\n'
    } > go.mod
    retry_go go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
    local LDF="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      LDF="$LDF -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
    done
    # shellcheck disable=SC2086 # $cmds is a list of packages
    retry_go go build -trimpath -ldflags "$LDF" -o "$BIN/" $cmds
  fi
  if [ ! -x "$BIN/etcd" ]; then
    log "building etcd v$ETCD_VERSION"
    cd "$DIR/src/etcd"
    printf 'module local/etcdbuild\n\ngo 1.23.0\n' > go.mod
    retry_go go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    retry_go go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  fi
  if [ ! -x "$BIN/kwok" ]; then
    log "building kwok v$KWOK_VERSION"
    GOBIN="$BIN" retry_go go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  fi
  local S f
  S="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo '---'; cat "$S/$f"
  done > "$BIN/kwok-stages.yaml"
  touch "$BIN/.complete"
}

with_lock k8s build >&2
echo "$BIN"
