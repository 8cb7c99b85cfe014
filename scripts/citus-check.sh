#!/usr/bin/env bash
# Runs agentplane's HTTP, WebSocket and concurrency tests on a local Citus
# cluster: a coordinator and two workers in a temporary folder, on ports
# CITUS_PORT (default 9700) to CITUS_PORT+2. Needs a PostgreSQL 15 whose
# lib folder holds citus (built or installed by you; see docs/operations.md):
#
#   CITUS_PG_BINDIR=/usr/lib/postgresql/15/bin scripts/citus-check.sh [test filter...]
#
# Every test database is created on the coordinator (Citus propagates CREATE
# DATABASE to the workers), gets the citus extension and the workers,
# is migrated and then distributed by sql/citus/distribute.sql
# (tests/it/support: AGENTPLANE_TEST_CITUS_WORKERS). CITUS_KEEP=1 leaves the
# cluster running for a look (its folder is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CITUS_PG_BINDIR:?set CITUS_PG_BINDIR to the bin folder of a PostgreSQL with citus}"
BASE=${CITUS_PORT:-9700}
PORTS=("$BASE" "$((BASE + 1))" "$((BASE + 2))")
DIR=$(mktemp -d /tmp/agentplane-citus.XXXXXX)
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$DIR"
    RUN_AS=(runuser -u postgres --)
fi

# Each node runs with HOME set to its own folder: libpq reads client
# certificates from $HOME/.postgresql, which must be readable by postgres.
node() { # node N command...
    local n=$1; shift
    env HOME="$DIR/n$n" "${RUN_AS[@]}" "$@"
}

stop_all() {
    if [ "${CITUS_KEEP:-0}" = 1 ]; then
        echo "cluster left running in $DIR (ports ${PORTS[*]})"
        return
    fi
    for n in 0 1 2; do
        [ -f "$DIR/n$n/data/postmaster.pid" ] &&
            node "$n" "$CITUS_PG_BINDIR/pg_ctl" -D "$DIR/n$n/data" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$DIR"
}
trap stop_all EXIT
trap "exit 130" INT TERM

for n in 0 1 2; do
    "${RUN_AS[@]}" mkdir -p "$DIR/n$n"
    node "$n" "$CITUS_PG_BINDIR/initdb" -D "$DIR/n$n/data" -U postgres --auth=trust \
        --locale=C.UTF-8 >/dev/null
    cat >>"$DIR/n$n/data/postgresql.conf" <<EOF
shared_preload_libraries = 'citus'
listen_addresses = '127.0.0.1'
port = ${PORTS[$n]}
unix_socket_directories = '$DIR/n$n'
max_connections = 400
shared_buffers = 256MB
# a throwaway cluster: durability is not under test
fsync = off
synchronous_commit = off
full_page_writes = off
citus.shard_count = 4
citus.enable_create_database_propagation = on
citus.max_adaptive_executor_pool_size = 4
EOF
    node "$n" "$CITUS_PG_BINDIR/pg_ctl" -D "$DIR/n$n/data" -l "$DIR/n$n/log" -w start >/dev/null
    node "$n" "$CITUS_PG_BINDIR/psql" -qX -h 127.0.0.1 -p "${PORTS[$n]}" -U postgres \
        -c "CREATE EXTENSION citus" postgres
done
echo "citus: $(node 0 "$CITUS_PG_BINDIR/psql" -qXtA -h 127.0.0.1 -p "${PORTS[0]}" -U postgres \
    -c "SELECT citus_version()" postgres)"

# CREATE DATABASE reaches the workers when the maintenance database knows them.
node 0 "$CITUS_PG_BINDIR/psql" -qXtA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PORTS[0]}" -U postgres \
    -c "SELECT citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})" \
    -c "SELECT citus_add_node('127.0.0.1', ${PORTS[1]})" \
    -c "SELECT citus_add_node('127.0.0.1', ${PORTS[2]})" postgres >/dev/null

export DATABASE_URL="postgres://postgres@127.0.0.1:${PORTS[0]}/postgres"
export AGENTPLANE_TEST_CITUS_COORDINATOR="127.0.0.1:${PORTS[0]}"
export AGENTPLANE_TEST_CITUS_WORKERS="127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
# The HTTP, WebSocket and concurrency tests (the catalog, migration, local
# cluster and TLS tests concern one plain server and are left out).
FILTERS=("$@")
if [ ${#FILTERS[@]} = 0 ]; then
    FILTERS=(access agents:: credits feed spend_ usage variants spec_walk strict_input
             executions)
fi
cargo test --test it -- --test-threads="${CITUS_TEST_THREADS:-4}" "${FILTERS[@]}"
