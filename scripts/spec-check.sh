#!/usr/bin/env bash
# Schemathesis over the served OpenAPI document: every operation gets
# generated requests, and a 5xx or a response that does not match the
# document is a finding. Exits non-zero on any finding. (scripts/fuzz.sh
# looks for 5xx only, on a release build.)
#
#   scripts/spec-check.sh [extra schemathesis options, e.g. --max-examples 20]
#
# With schemathesis's defaults (100 examples per operation, all four phases)
# a run is about 5 minutes on two cores, plus a minute for the first install.
#
# Needs python3 and a PostgreSQL server (DATABASE_URL's, default the local
# trust-auth one); the server is started on a fresh database made here and
# dropped on exit. Schemathesis is installed from PyPI into .spec-check/venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
work=.spec-check
mkdir -p "$work"
if [ ! -x "$work/venv/bin/schemathesis" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

base_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db="agentplane_spec_check_$$"
db_url="${base_url%/*}/$db"
psql "$base_url" -qc "CREATE DATABASE \"$db\""

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=spec-check-admin-key
cargo build -q
DATABASE_URL=$db_url AGENTPLANE_BIND=127.0.0.1:$port AGENTPLANE_ADMIN_KEY=$key \
    RUST_LOG=warn target/debug/agentplane serve >"$work/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    psql "$base_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
}
trap cleanup EXIT

for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 1
done

# The admin key reaches every operation; stopping the organism would make
# every later inject a 409, so that one operation is left out.
# Run from the work folder: schemathesis keeps its cache in the current one.
cd "$work"
venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    -H "Authorization: Bearer $key" \
    --exclude-operation-id stopOrganism \
    --workers 2 \
    "$@"
