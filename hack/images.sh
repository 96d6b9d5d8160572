#!/usr/bin/env bash
# Builds itemq's container images (`make images`; images/README.md):
#   itemq-dir itemq-bucket itemq-kafka itemq-manager itemq-script itemq-thumbnail
# with docker when a Docker engine answers (`docker info`), else podman
# (ENGINE=podman|docker chooses). Tags: $REGISTRY/<name>:$VERSION and :latest.
#
# The binaries are built here (static, CGO_ENABLED=0, -trimpath, the
# Makefile's -ldflags with the version, and GOTAGS, default grpcnotrace: see
# docs/benchmarks/images.md) and staged with what else goes in (images/) into a
# small context per image under $IMAGES_BUILD_DIR.
#
# Bases (BASES):
#   local     (default) what can be built without pulling anything: the
#             Go-only images FROM localhost/itemq-static-base (scratch +
#             images/rootfs + the build host's CA certificates), the ffmpeg
#             image FROM localhost/itemq-debian-base:bookworm (hack/debian-base.sh)
#   upstream  the Dockerfiles' defaults: gcr.io/distroless/static-debian12:nonroot
#             and debian:bookworm-slim (pulled)
# STATIC_BASE / DEBIAN_BASE override either.
#
# Environment: IMAGES="itemq-dir itemq-script" builds a subset; VERSION,
# REVISION, LDFLAGS, CMDS (name:package pairs) come from the Makefile when it
# calls this, and are computed the same way otherwise. Prints the tags built.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

MODULE=github.com/itemq/itemq
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
LDFLAGS=${LDFLAGS:-"-s -w -X $MODULE/internal/version.Version=$VERSION -X $MODULE/internal/version.Revision=$REVISION"}
GOTAGS=${GOTAGS-grpcnotrace}
CMDS=${CMDS:-"itemq-dir:ambassadors/dir itemq-bucket:ambassadors/bucket itemq-kafka:ambassadors/kafka itemq-script:executors/script itemq-thumbnail:executors/thumbnail itemq-manager:manager itemq-blob:executors/blob"}
REGISTRY=${REGISTRY:-itemq}
BASES=${BASES:-local}
IMAGES=${IMAGES:-"itemq-dir itemq-bucket itemq-kafka itemq-manager itemq-script itemq-thumbnail"}
IMAGES_BUILD_DIR=${IMAGES_BUILD_DIR:-$ITEMQ_CACHE/images-build}
SOURCE=${SOURCE:-https://github.com/itemq/itemq}
# Binaries that executor images ship next to the executor (when the build has them).
EXECUTOR_HELPERS=${EXECUTOR_HELPERS:-itemq-blob}

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    ENGINE=podman
  fi
fi
command -v "$ENGINE" >/dev/null || { log "no container engine: install podman (hack/deps/60-podman.sh) or docker"; exit 1; }
export ENGINE

case $BASES in
local)
  STATIC_BASE=${STATIC_BASE:-localhost/itemq-static-base:latest}
  DEBIAN_BASE=${DEBIAN_BASE:-localhost/itemq-debian-base:bookworm}
  ;;
upstream)
  STATIC_BASE=${STATIC_BASE:-gcr.io/distroless/static-debian12:nonroot}
  DEBIAN_BASE=${DEBIAN_BASE:-debian:bookworm-slim}
  ;;
*) log "BASES=$BASES: want local or upstream"; exit 2 ;;
esac

# pkg NAME: the package of a binary, from CMDS ("" when the build has no such binary).
pkg() {
  local c
  for c in $CMDS; do
    if [ "${c%%:*}" = "$1" ] && [ -d "${c#*:}" ]; then echo "${c#*:}"; return; fi
  done
}

# binaries IMAGE: what goes into the image's bin/.
binaries() {
  case $1 in
  itemq-script | itemq-thumbnail)
    echo "$1"
    local h
    for h in $EXECUTOR_HELPERS; do [ -n "$(pkg "$h")" ] && echo "$h"; done
    ;;
  *) echo "$1" ;;
  esac
}

build_all() {
  mkdir -p "$IMAGES_BUILD_DIR/bin"
  # The binaries, once each.
  local names=() img b
  for img in $IMAGES; do
    for b in $(binaries "$img"); do
      [[ " ${names[*]} " == *" $b "* ]] || names+=("$b")
    done
  done
  for b in "${names[@]}"; do
    local p
    p=$(pkg "$b")
    [ -n "$p" ] || { log "no package for $b in CMDS"; exit 1; }
    log "go build -tags '$GOTAGS' -o bin/$b ./$p"
    CGO_ENABLED=0 go build -trimpath -tags "$GOTAGS" -ldflags "$LDFLAGS" -o "$IMAGES_BUILD_DIR/bin/.$b.new" "./$p"
    mv "$IMAGES_BUILD_DIR/bin/.$b.new" "$IMAGES_BUILD_DIR/bin/$b"
  done

  # The bases.
  if [ "$BASES" = local ]; then
    if [[ " $IMAGES " =~ \ itemq-(dir|bucket|kafka|manager|script)\  ]]; then
      local ctx="$IMAGES_BUILD_DIR/ctx/static-base"
      rm -rf "$ctx" && mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/home/nonroot"
      cp -R images/rootfs/. "$ctx/rootfs/"
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
      chmod 1777 "$ctx/rootfs/tmp"
      chmod 0755 "$ctx/home/nonroot"
      build static-base "$ctx" "$STATIC_BASE"
    fi
    if [[ " $IMAGES " == *" itemq-thumbnail "* ]]; then
      ITEMQ_DEBIAN_BASE=$DEBIAN_BASE with_lock debian-base bash hack/debian-base.sh >/dev/null
    fi
  fi

  # The images.
  for img in $IMAGES; do
    local ctx="$IMAGES_BUILD_DIR/ctx/$img" base=$STATIC_BASE
    [ "$img" = itemq-thumbnail ] && base=$DEBIAN_BASE
    rm -rf "$ctx" && mkdir -p "$ctx/bin"
    for b in $(binaries "$img"); do
      cp "$IMAGES_BUILD_DIR/bin/$b" "$ctx/bin/$b"
    done
    build "$img" "$ctx" "$REGISTRY/$img:$VERSION" "$REGISTRY/$img:latest" -- \
      --build-arg "BASE=$base" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
      --build-arg "SOURCE=$SOURCE"
    echo "$REGISTRY/$img:$VERSION"
  done
}

# build NAME CONTEXT TAG... [-- BUILD ARGS...]
build() {
  local name=$1 ctx=$2; shift 2
  local tags=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do tags+=(-t "$1"); shift; done
  [ "${1:-}" = -- ] && { shift; extra=("$@"); }
  local start=$SECONDS
  if ! "$ENGINE" build --quiet -f "Dockerfiles/$name.Dockerfile" "${tags[@]}" "${extra[@]}" "$ctx" >"$IMAGES_BUILD_DIR/$name.build.log" 2>&1; then
    log "$ENGINE build $name failed:"; tail -n 40 "$IMAGES_BUILD_DIR/$name.build.log" >&2; exit 1
  fi
  log "$name: $((SECONDS - start))s"
}

mkdir -p "$IMAGES_BUILD_DIR"
with_lock images build_all
