#!/usr/bin/env bash
# Benchmarks of the directory ambassador (itemq-dir), against the real binary:
# paged listing of 100k files, GET requests/s, watch latency, and resident
# memory with 1M indexed files. Figures and commands are recorded in
# docs/benchmarks/dir.md.
#
#   hack/bench-dir.sh                 # everything (about 3 minutes, 1M files on disk)
#   hack/bench-dir.sh 'ListPaged|Get' # a -bench regexp
#
# ITEMQ_BENCH_RSS_FILES (default 1000000) sets the size of the RSS tree;
# ITEMQ_BENCH_RSS_DIR keeps that tree between runs (it takes a minute or two
# to create); without it the tree is made in a temporary directory and removed.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

filter=${1:-'ListPaged100k|BenchmarkGet|WatchLatency|BenchmarkRSS'}
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "go test -run '^\$' -bench '$filter' -benchtime 3x ./ambassadors/dir/"
go test -run '^$' -bench "$filter" -benchtime 3x -timeout 60m ./ambassadors/dir/
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
