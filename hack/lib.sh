# shellcheck shell=bash
# Shared helpers for the hack/ scripts. Source it; do not run it.
set -euo pipefail

# Everything heavy that the tests need is built once and kept here, keyed by version.
ITEMQ_CACHE=${ITEMQ_CACHE:-$HOME/.cache/itemq}
export GOFLAGS=${GOFLAGS:--buildvcs=false} GOWORK=off

log() { printf '[hack] %s\n' "$*" >&2; }

# retry_go CMD...: Go module downloads can stall on this network; bound each try and try twice.
retry_go() {
  local limit=${RETRY_TIMEOUT:-1500}
  if timeout "$limit" "$@"; then return 0; fi
  log "retrying after failure or timeout: $*"
  timeout "$limit" "$@"
}

# apt_install PKG...: install Debian packages that are missing (root only; CI runs as root).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# with_lock NAME CMD...: serialise builds of one cached thing across concurrent callers.
with_lock() {
  local name=$1; shift
  mkdir -p "$ITEMQ_CACHE/locks"
  ( flock 9; "$@" ) 9>"$ITEMQ_CACHE/locks/$name.lock"
}
