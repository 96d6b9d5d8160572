#!/usr/bin/env bash
# Benchmarks of the executors (figures go in docs/benchmarks/executors.md):
#  1. itemq-thumbnail against ffmpeg alone with the same arguments on the same file;
#  2. itemq-script's start-to-exit overhead running /bin/true, against /bin/true alone,
#     an empty Go program and a program that only links internal/blobs (gocloud);
#  3. the same overhead for builds without some storage drivers (build tags).
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
  for tags in "" itemq_no_gcs,itemq_no_azure itemq_no_gcs,itemq_no_azure,itemq_no_s3; do
    CGO_ENABLED=0 go build -tags "$tags" -o "$tmp/itemq-script" ./executors/script
    printf 'tags=%-40s ' "${tags:-(all drivers)}"
    WORK_ITEM_FILE=$tmp/item.json OUTPUT_DIR=$tmp/out EXECUTOR_LOG_LEVEL=warn \
      perf stat -r "$rounds" "$tmp/itemq-script" -- /bin/true 2>&1 |
      awk '/task-clock/ {cpu=$1} /page-faults/ {pf=$1} /elapsed/ {wall=$1*1000} END {printf "cpu %.1f ms  wall %.1f ms  page-faults %s\n", cpu, wall, pf}'
  done
  printf '%-45s ' "/bin/true"
  perf stat -r "$rounds" /bin/true 2>&1 |
    awk '/task-clock/ {cpu=$1} /page-faults/ {pf=$1} /elapsed/ {wall=$1*1000} END {printf "cpu %.1f ms  wall %.1f ms  page-faults %s\n", cpu, wall, pf}'
fi
uptime
