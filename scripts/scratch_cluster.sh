# Sourced by the instruction-count scripts (scripts/instructions.sh,
# scripts/ingest_instructions.sh): checks for valgrind and the PostgreSQL
# binaries, builds agentplane, and starts a throw-away cluster (fsync off) with
# a migrated database `bench`. Sets: bindir, work (removed on exit), url,
# and the functions as_pg and instructions_of. The caller loads its data,
# stops the server, then counts with instructions_of.
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
bindir=${AGENTPLANE_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$bindir/postgres" ] || { echo "no PostgreSQL binaries (set AGENTPLANE_PG_BINDIR)" >&2; exit 1; }
cargo build --release --quiet --bin agentplane

work=$(mktemp -d /tmp/agentplane-scratch.XXXXXX)
trap 'as_pg "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# PostgreSQL refuses to run as root: run it as `postgres` when we are root.
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$((20000 + RANDOM % 20000))
as_pg "$bindir/initdb" -D "$work/data" -A trust -U postgres >/dev/null
cat >> "$work/data/postgresql.conf" <<EOC
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = off
EOC
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port"
psql -q "$url/postgres" -c "CREATE DATABASE bench"
DATABASE_URL="$url/bench" ./target/release/agentplane migrate >/dev/null 2>&1

# instructions_of NAME: runs the statements of $work/NAME.sql (one per line)
# in a single-user backend under callgrind; prints the instructions counted.
instructions_of() {
    chmod 644 "$work/$1.sql"
    as_pg valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" \
        "$bindir/postgres" --single -D "$work/data" -c synchronous_commit=off bench \
        < "$work/$1.sql" > "$work/$1.out" 2> "$work/$1.vg"
    grep -oP 'Collected : \K[0-9]+' "$work/$1.vg"
}
