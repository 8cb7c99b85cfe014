#!/usr/bin/env bash
# Fuzzes every operation of the OpenAPI spec with schemathesis (from PyPI):
# generated and mutated requests must never get a 5xx. Uses a fresh database
# on DATABASE_URL's server (default: the machine's 127.0.0.1:5432).
#
#   scripts/fuzz.sh            # ~1 minute, 40 examples per operation
#   MAX_EXAMPLES=200 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
server=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=agentplane_fuzz_$$
url="${server%/*}/$db"
command -v schemathesis >/dev/null 2>&1 || pip install -q schemathesis
cargo build --release -q
psql -q "$server" -c "CREATE DATABASE $db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="$url" AGENTPLANE_BIND="127.0.0.1:$port" AGENTPLANE_ADMIN_KEY=fuzz-key RUST_LOG=warn \
    target/release/agentplane serve &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; psql -q "$server" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
schemathesis run "http://127.0.0.1:$port/openapi.json" -H "Authorization: Bearer fuzz-key" \
    --checks not_a_server_error --max-examples "${MAX_EXAMPLES:-40}" --workers 2
