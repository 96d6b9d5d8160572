#!/usr/bin/env bash
# promcheck (hack/promcheck): checks the alert rules (deploy/prometheus/rules.yaml)
# as `promtool check rules` does, with Prometheus's own rulefmt and PromQL parser,
# and the Grafana dashboard's PromQL; prints the metric names they use. A module of
# its own, so Prometheus is not a dependency of itemq; built once into the cache
# (keyed by the hash of its go.mod, go.sum and main.go; about 2 minutes cold).
# Prints ITEMQ_PROMCHECK=<path of the binary>.
source "$(dirname "$0")/../lib.sh"
src=$(cd "$(dirname "$0")/../promcheck" && pwd)
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
BIN=$ITEMQ_CACHE/promcheck-$key/promcheck

build() {
  [ -x "$BIN" ] && return 0
  log "building promcheck (Prometheus rulefmt and PromQL parser)"
  mkdir -p "$(dirname "$BIN")"
  (cd "$src" && CGO_ENABLED=0 retry_go go build -trimpath -o "$BIN.new" . && mv "$BIN.new" "$BIN")
}

with_lock promcheck build >&2
echo "ITEMQ_PROMCHECK=$BIN"
