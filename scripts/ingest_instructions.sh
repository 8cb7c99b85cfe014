#!/usr/bin/env bash
# Instructions per usage record (the parts of batch usage ingest), counted by callgrind in a
# single-user PostgreSQL backend, with batches like the benchmark's (1,000
# records over 1,000 threads, 4 models, 10 agents), on a table already holding
# 300,000 records:
#
#   copy          COPY of the same rows into a plain table (the ingest baseline)
#   bare insert   one INSERT of the batch's arrays into usage.batches, nothing
#                 else (the floor of the batch-per-row storage: one tuple, one
#                 primary-key entry, the arrays compressed into TOAST)
#   record_batch  usage.record_batch: validation, pricing, the insert, the
#                 usage.unfolded row and the summary event
#   fold          usage.fold() of 20 such batches, per record
#
#   scripts/ingest_instructions.sh       # about two minutes
#
# Needs valgrind and the PostgreSQL server binaries; builds agentplane in
# release mode to migrate its own scratch cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/scratch_cluster.sh
psql -q -v ON_ERROR_STOP=1 "$url/bench" >/dev/null <<'EOSQL'
CREATE TABLE public.batch AS
SELECT array_agg('t-' || (n % 5000)) t, array_agg('agent-' || (n % 10)) a,
       array_agg((ARRAY['grok-4.1','gpt-4o','claude-sonnet-4-20250514','o3-mini'])[1 + n % 4]) m,
       array_agg(NULL::text) p, array_agg((100 + n % 900)::bigint) pt,
       array_agg((50 + n % 300)::bigint) ct, array_agg((200 + n % 1000)::bigint) l,
       array_agg(NULL::text) u, array_agg(NULL::text) v, array_agg(NULL::jsonb) md,
       array_agg(NULL::timestamptz) at
FROM generate_series(1, 1000) n;
DO $$ BEGIN
    FOR i IN 1..300 LOOP
        PERFORM usage.record_batch(t, a, m, p, pt, ct, l, u, v, md, at) FROM batch;
    END LOOP;
END $$;
SELECT usage.fold(1000000);
CREATE TABLE public.plain (thread_id text, agent_id text, model text, prompt_tokens bigint,
                           completion_tokens bigint, latency_ms bigint,
                           created_at timestamptz DEFAULT now());
CREATE SEQUENCE public.bare_ids START 100000000;
VACUUM ANALYZE;
CHECKPOINT;
EOSQL
# ten batches' rows per COPY, as the benchmark copies many batches at once
# (a COPY's own set-up is then a small part of each row)
psql -q "$url/bench" -c "COPY (SELECT unnest(t), unnest(a), unnest(m), unnest(pt), unnest(ct), unnest(l) FROM batch, generate_series(1, 10)) TO '$work/rows.tsv'"
as_pg "$bindir/pg_ctl" -D "$work/data" -w stop >/dev/null

count() { # name, statement, times: instructions of running it that often
    for _ in $(seq "$3"); do echo "$2"; done > "$work/$1.sql"
    instructions_of "$1"
}
per_record() { # name, statement, times, records per statement
    local total base
    total=$(count "$1" "$2" "$3")
    base=$(count "$1-base" "SELECT 1;" "$3")
    echo $(((total - base) / ($3 * $4)))
}
copy=$(per_record copy "COPY plain (thread_id, agent_id, model, prompt_tokens, completion_tokens, latency_ms) FROM '$work/rows.tsv';" 5 10000)
batch=$(per_record batch "SELECT usage.record_batch(t, a, m, p, pt, ct, l, u, v, md, at) FROM batch;" 20 1000)
fold=$(per_record fold "SELECT usage.fold(1000000);" 1 20000)
# last: its ids (from bare_ids) sit above every batch's, as a batch's do
bare=$(per_record bare "INSERT INTO usage.batches (first_id, n, epoch, min_at, max_at, thread_ids, agent_ids, models, providers, prompt_tokens, completion_tokens, latency_ms, cost_micros, price_ids, user_ids, variant_ids, metadata, at) SELECT nextval('bare_ids'), 1000, 1, now(), now(), t || '{}'::text[], a || '{}'::text[], m || '{}'::text[], p || '{}'::text[], pt || '{}'::bigint[], ct || '{}'::bigint[], l || '{}'::bigint[], array_fill(15::bigint, ARRAY[1000]), array_fill(1::bigint, ARRAY[1000]), u || '{}'::text[], v || '{}'::text[], md || '{}'::jsonb[], at || '{}'::timestamptz[] FROM batch;" 20 1000)
echo "instructions per record (1,000-record batches over 1,000 threads)"
printf '  COPY into a plain table      %8d\n' "$copy"
printf '  bare INSERT of a batch row    %8d\n' "$bare"
printf '  usage.record_batch           %8d\n' "$batch"
printf '  usage.fold (20 batches)      %8d\n' "$fold"
