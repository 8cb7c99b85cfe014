#!/usr/bin/env bash
# The benchmark (docs/performance.md): builds agentplane in release mode, starts it on a
# fresh database, loads it, and prints the figures as ratios against
# baselines measured in the same run.
#
#   scripts/bench.sh                      # full run (~10 minutes, 10M usage records)
#   BENCH_SECS=5 BENCH_RECORDS=1000000 scripts/bench.sh   # quicker
#
# Uses DATABASE_URL's server (default: the machine's 127.0.0.1:5432) to create
# and drop its own database. wrk drives the HTTP spend load when installed
# (installed here from Debian's packages if missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk)) >/dev/null 2>&1 \
        || echo "wrk unavailable: using the built-in Rust load generator" >&2
fi
exec cargo bench --bench load
