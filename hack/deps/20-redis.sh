#!/usr/bin/env bash
# Debian's Redis: redis-server and redis-sentinel for the Redis ambassador's
# tests (internal/source/redissource, ambassadors/redis), which start their own
# servers on free 127.0.0.1 ports.
source "$(dirname "$0")/../lib.sh"
apt_install redis-server redis-tools redis-sentinel
echo "ITEMQ_REDIS_SERVER=$(command -v redis-server)"
echo "ITEMQ_REDIS_SENTINEL=$(command -v redis-sentinel)"
