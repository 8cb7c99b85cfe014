#!/usr/bin/env bash
# Instructions per call of credits.spend and of the minimal spend (the two
# sides of spend function overhead),
# counted by callgrind in a single-user PostgreSQL backend. Unlike timings on a
# shared machine, the counts repeat within about 1% from run to run, which
# makes them the tool for deciding whether a change to the hot path helps
# (docs/performance.md).
#
#   scripts/instructions.sh              # 2,000 calls of each (about a minute)
#   CALLS=500 scripts/instructions.sh
#
# Needs valgrind and the PostgreSQL server binaries (initdb, pg_ctl, postgres);
# builds agentplane in release mode to migrate its own scratch cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${CALLS:-2000}
. scripts/scratch_cluster.sh
# the same data and baseline as the benchmark
psql -q -v ON_ERROR_STOP=1 "$url/bench" -f benches/load/credits_setup.sql >/dev/null
psql -q -v ON_ERROR_STOP=1 "$url/bench" -f benches/load/minimal_spend.sql >/dev/null
psql -q "$url/bench" -c "VACUUM ANALYZE" >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/data" -w stop >/dev/null

# One prepared statement, then `calls` executions on random users.
script() { # name, PREPARE text, EXECUTE template with %u for the user number
    { echo "$2"; for _ in $(seq "$calls"); do printf "$3\n" $((RANDOM % 10000 + 1)); done; } > "$work/$1.sql"
}
script call "PREPARE s AS SELECT 1;" "EXECUTE s;"
script minimal "PREPARE s(text) AS SELECT bench.min_spend(\$1, 1);" "EXECUTE s('bu%u');"
script spend "PREPARE s(text) AS SELECT * FROM credits.spend(\$1, 'bench-block', '{\"credentials\":{\"provider\":\"platform\"}}');" "EXECUTE s('bu%u');"
count() { # prints instructions per call of script $1
    echo $(($(instructions_of "$1") / calls))
}
base=$(count call)
minimal=$(count minimal)
spend=$(count spend)
echo "instructions per call ($calls calls each; 'net' leaves out the call itself, ${base})"
printf '  minimal spend    %8d  net %8d\n' "$minimal" $((minimal - base))
printf '  credits.spend    %8d  net %8d\n' "$spend" $((spend - base))
awk -v m=$((minimal - base)) -v s=$((spend - base)) \
    'BEGIN { printf "  ratio minimal/spend (net): %.2f\n", m / s }'
