#!/usr/bin/env bash
# Builds itemq's container images (`make images`; images/README.md):
#   itemq-dir itemq-bucket itemq-kafka itemq-redis itemq-manager itemq-script itemq-thumbnail
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
# Platforms (PLATFORMS, default "linux/amd64 linux/arm64"): with podman, each
# static Go image is built once per platform from binaries cross-compiled with
# GOARCH (no emulation: its Dockerfile only COPYs) and tagged
# $REGISTRY/<name>:$VERSION-<arch>; $REGISTRY/<name>:$VERSION and :latest are
# then a manifest list of those (podman run picks the host's). The ffmpeg image
# (itemq-thumbnail) RUNs apt-get, which for another architecture would need
# emulation: it is built for THUMBNAIL_PLATFORMS (default: the host's) only, as
# a plain image. Docker's classic image store holds no manifest lists: with
# docker every image is built for the host's platform only.
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
CMDS=${CMDS:-"itemq-dir:ambassadors/dir itemq-bucket:ambassadors/bucket itemq-kafka:ambassadors/kafka itemq-redis:ambassadors/redis itemq-script:executors/script itemq-thumbnail:executors/thumbnail itemq-manager:manager itemq:cmd/itemq"}
REGISTRY=${REGISTRY:-itemq}
BASES=${BASES:-local}
IMAGES=${IMAGES:-"itemq-dir itemq-bucket itemq-kafka itemq-redis itemq-manager itemq-script itemq-thumbnail"}
IMAGES_BUILD_DIR=${IMAGES_BUILD_DIR:-$ITEMQ_CACHE/images-build}
SOURCE=${SOURCE:-https://github.com/itemq/itemq}
HOST_ARCH=$(go env GOARCH)
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64"}
THUMBNAIL_PLATFORMS=${THUMBNAIL_PLATFORMS:-linux/$HOST_ARCH}
# Binaries that executor images ship next to the executor (when the build has them):
# the itemq command, for scripts that read or write buckets (itemq blob …).
EXECUTOR_HELPERS=${EXECUTOR_HELPERS:-itemq}

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    ENGINE=podman
  fi
fi
command -v "$ENGINE" >/dev/null || { log "no container engine: install podman (hack/deps/60-podman.sh) or docker"; exit 1; }
export ENGINE
# The engine's kind, whether ENGINE names it or its path (/usr/bin/podman).
ENGINE_KIND=$(basename "$ENGINE")
if [ "$ENGINE_KIND" != podman ]; then
  PLATFORMS=linux/$HOST_ARCH THUMBNAIL_PLATFORMS=linux/$HOST_ARCH
fi

# arches IMAGE: the architectures the image is built for.
arches() {
  local p list=$PLATFORMS
  [ "$1" = itemq-thumbnail ] && list=$THUMBNAIL_PLATFORMS
  for p in $list; do echo "${p#linux/}"; done
}

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
  itemq-manager)
    # The itemq command beside the manager: kubectl exec … -- itemq jobs.
    echo "$1"
    if [ -n "$(pkg itemq)" ]; then echo itemq; fi
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
  local all_arches=() a
  for img in $IMAGES; do
    for a in $(arches "$img"); do
      [[ " ${all_arches[*]} " == *" $a "* ]] || all_arches+=("$a")
    done
  done
  for a in "${all_arches[@]}"; do
    mkdir -p "$IMAGES_BUILD_DIR/bin/$a"
    for b in "${names[@]}"; do
      local p
      p=$(pkg "$b")
      [ -n "$p" ] || { log "no package for $b in CMDS"; exit 1; }
      log "GOARCH=$a go build -tags '$GOTAGS' -o bin/$a/$b ./$p"
      CGO_ENABLED=0 GOOS=linux GOARCH=$a go build -trimpath -tags "$GOTAGS" -ldflags "$LDFLAGS" -o "$IMAGES_BUILD_DIR/bin/$a/.$b.new" "./$p"
      mv "$IMAGES_BUILD_DIR/bin/$a/.$b.new" "$IMAGES_BUILD_DIR/bin/$a/$b"
    done
  done

  # The bases.
  if [ "$BASES" = local ]; then
    if [[ " $IMAGES " =~ \ itemq-(dir|bucket|kafka|redis|manager|script)\  ]]; then
      local ctx="$IMAGES_BUILD_DIR/ctx/static-base"
      rm -rf "$ctx" && mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/home/nonroot"
      cp -R images/rootfs/. "$ctx/rootfs/"
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
      chmod 1777 "$ctx/rootfs/tmp"
      chmod 0755 "$ctx/home/nonroot"
      # One base per platform (FROM scratch + COPY: no emulation), tagged
      # <STATIC_BASE>-<arch> (no layer cache: the contexts are the same, and
      # podman would reuse one architecture's image for the other); the host's
      # also as STATIC_BASE itself.
      for a in $PLATFORMS; do
        a=${a#linux/}
        build static-base "$ctx" "$STATIC_BASE-$a" -- --platform "linux/$a" --no-cache
      done
      "$ENGINE" tag "$STATIC_BASE-$HOST_ARCH" "$STATIC_BASE" 2>/dev/null || build static-base "$ctx" "$STATIC_BASE"
    fi
    if [[ " $IMAGES " == *" itemq-thumbnail "* ]]; then
      ITEMQ_DEBIAN_BASE=$DEBIAN_BASE with_lock debian-base bash hack/debian-base.sh >/dev/null
    fi
  fi

  # The images: one per architecture, then (several architectures, podman) a
  # manifest list under the version and latest tags.
  for img in $IMAGES; do
    local img_arches
    img_arches=$(arches "$img")
    local multi=false
    [ "$ENGINE_KIND" = podman ] && [ "$img" != itemq-thumbnail ] && multi=true
    for a in $img_arches; do
      local ctx="$IMAGES_BUILD_DIR/ctx/$img-$a" base=$STATIC_BASE
      if [ "$img" = itemq-thumbnail ]; then
        base=$DEBIAN_BASE
      elif [ "$BASES" = local ]; then
        base=$STATIC_BASE-$a
      fi
      rm -rf "$ctx" && mkdir -p "$ctx/bin"
      for b in $(binaries "$img"); do
        cp "$IMAGES_BUILD_DIR/bin/$a/$b" "$ctx/bin/$b"
      done
      local tags=("$REGISTRY/$img:$VERSION-$a")
      $multi || tags=("$REGISTRY/$img:$VERSION" "$REGISTRY/$img:latest")
      build "$img" "$ctx" "${tags[@]}" -- --platform "linux/$a" \
        --build-arg "BASE=$base" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
        --build-arg "SOURCE=$SOURCE"
    done
    if $multi; then
      local tag
      for tag in "$VERSION" latest; do
        manifest "$REGISTRY/$img:$tag" $(for a in $img_arches; do echo "$REGISTRY/$img:$VERSION-$a"; done)
      done
    fi
    echo "$REGISTRY/$img:$VERSION"
  done
  # A rebuild moves the tags to new images and leaves the old ones (and the
  # build's intermediate layers) behind untagged; with podman's vfs storage
  # each is a full copy of its file system, so repeated builds would fill the
  # disk. Remove the untagged ones of ours (by their source label, so that
  # another build running beside this one keeps its intermediate images).
  "$ENGINE" image prune -f --filter "label=org.opencontainers.image.source=$SOURCE" >/dev/null 2>&1 || true
}

# manifest LIST IMAGE...: (re)make the manifest list LIST of the local IMAGEs.
manifest() {
  local list=$1 i; shift
  "$ENGINE" manifest rm "$list" >/dev/null 2>&1 || "$ENGINE" rmi "$list" >/dev/null 2>&1 || true
  "$ENGINE" manifest create "$list" >/dev/null
  for i in "$@"; do
    # By ID: a short name would resolve to docker.io in containers-storage:.
    "$ENGINE" manifest add "$list" "containers-storage:$("$ENGINE" image inspect --format '{{.Id}}' "$i")" >/dev/null
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
