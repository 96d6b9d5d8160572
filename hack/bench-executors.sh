#!/usr/bin/env bash
# Benchmarks of the executors (figures go in docs/benchmarks/executors.md):
#  1. itemq-thumbnail against ffmpeg alone with the same arguments on the same file;
#  2. itemq-script's start-to-exit overhead running /bin/true, against /bin/true alone,
#     an empty Go program and a Go program that only runs /bin/true; without a bucket and
#     with a file:// OUTPUT_URL (bucket I/O in process);
#  3. perf stat of the same, with the binaries built as `make build` builds them.
# Usage: hack/bench-executors.sh [ROUNDS]   (default 30; needs ffmpeg, and perf for part 3)
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
rounds=${1:-30}
uptime
go test -run '^$' -bench 'BenchmarkThumbnailVsFFmpeg' -benchtime "$((rounds / 2 > 0 ? rounds / 2 : 1))x" ./internal/executor/thumbnail/
go test -run '^$' -bench 'BenchmarkScriptOverhead' -benchtime "${rounds}x" ./internal/executor/

if command -v perf >/dev/null; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  echo '{"kind":"Item","apiVersion":"v1","name":"bench","data":{"n":1}}' > "$tmp/item.json"
  for c in itemq-script:executors/script itemq-thumbnail:executors/thumbnail; do
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/${c%%:*}" "./${c#*:}"
  done
  ls -l "$tmp"/itemq-*
  pstat() { # label, command...
    local label=$1; shift
    printf '%-48s ' "$label"
    perf stat -r "$rounds" "$@" 2>&1 >/dev/null |
      awk '/task-clock/ {cpu=$1} /page-faults/ {pf=$1} /elapsed/ {wall=$1*1000} END {printf "cpu %.1f ms  wall %.1f ms  page-faults %s\n", cpu, wall, pf}'
  }
  export WORK_ITEM_FILE=$tmp/item.json EXECUTOR_LOG_LEVEL=warn
  (export OUTPUT_DIR=$tmp/out; pstat "itemq-script -- /bin/true (no bucket)" "$tmp/itemq-script" -- /bin/true)
  mkdir -p "$tmp/bucket"
  (export OUTPUT_URL=file://$tmp/bucket EXECUTOR_FORCE=true
   pstat "itemq-script -- /bin/true (file:// OUTPUT_URL)" "$tmp/itemq-script" -- /bin/true)
  pstat "itemq-script --version" "$tmp/itemq-script" --version
  pstat "itemq-thumbnail --version" "$tmp/itemq-thumbnail" --version
  pstat "/bin/true" /bin/true
fi
uptime
