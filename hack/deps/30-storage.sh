#!/usr/bin/env bash
# Real object-storage servers for the bucket ambassador's and the executors'
# integration tests (see ../shared/recipes/storage-and-kafka-servers.md §1-3):
#   versitygw (S3, posix backend)  go install, about 3 min cold
#   fake-gcs-server (GCS)          go install, about 3 min cold
#   Azurite (Azure Blob)           npm install, about 1 min cold
# Each is built once into ~/.cache/itemq/<name>-<version>/ and reused; a cached
# run only checks that the files are there. Prints ITEMQ_VERSITYGW,
# ITEMQ_FAKEGCS and ITEMQ_AZURITE (paths of the executables).
source "$(dirname "$0")/../lib.sh"

VERSITYGW_VERSION=v1.8.0
FAKEGCS_VERSION=v1.56.1
AZURITE_VERSION=3.37.0 # ran on Node 20 here although it declares engines.node >= 22

# go_tool NAME PKG VERSION: go install PKG@VERSION into the cache once; prints the binary's path.
go_tool() {
  local name=$1 pkg=$2 version=$3
  local dir="$ITEMQ_CACHE/$name-$version"
  local bin="$dir/bin/$(basename "$pkg")"
  if [ ! -x "$bin" ]; then
    build() {
      [ -x "$bin" ] && return 0 # built by a concurrent caller while we waited
      log "go install $pkg@$version (a few minutes, once)"
      local tmp
      tmp=$(mktemp -d "$ITEMQ_CACHE/.$name.XXXXXX")
      # Outside any module, so that the tool's own go.mod decides its dependencies.
      (cd "$tmp" && GOBIN="$tmp/bin" retry_go go install "$pkg@$version") || { rm -rf "$tmp"; return 1; }
      rm -rf "$dir" && mv "$tmp" "$dir"
    }
    with_lock "$name" build
  fi
  echo "$bin"
}

# azurite: npm install into the cache once; prints the path of azurite-blob.
azurite() {
  local dir="$ITEMQ_CACHE/azurite-$AZURITE_VERSION"
  local bin="$dir/node_modules/.bin/azurite-blob"
  if [ ! -x "$bin" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    build() {
      [ -x "$bin" ] && return 0
      log "npm install azurite@$AZURITE_VERSION (about a minute, once)"
      local tmp
      tmp=$(mktemp -d "$ITEMQ_CACHE/.azurite.XXXXXX")
      (cd "$tmp" && echo '{"private":true}' >package.json &&
        timeout 900 npm install --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2) ||
        { rm -rf "$tmp"; return 1; }
      rm -rf "$dir" && mv "$tmp" "$dir"
    }
    with_lock azurite build
  fi
  echo "$bin"
}

mkdir -p "$ITEMQ_CACHE"
vgw=$(go_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION")
gcs=$(go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKEGCS_VERSION")
azr=$(azurite)
echo "ITEMQ_VERSITYGW=$vgw"
echo "ITEMQ_FAKEGCS=$gcs"
echo "ITEMQ_AZURITE=$azr"
