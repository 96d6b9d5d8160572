#!/usr/bin/env bash
# Installs (once; cached under ~/.cache/itemq) everything the tests need on a
# fresh machine, by running each script in hack/deps/ in order. Each script
# prints KEY=VALUE lines (paths of servers and tools); this script prints them
# all, plus ITEMQ_REQUIRE_INTEGRATION=1, so that `make test` can export them
# and the integration tests fail (rather than skip) when something is missing.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
for s in hack/deps/*.sh; do
  start=$(date +%s)
  bash "$s"
  log "$(basename "$s"): $(( $(date +%s) - start ))s"
done
echo "ITEMQ_REQUIRE_INTEGRATION=1"
