-- Usage ingest: repricing written records (docs/usage.md, "Repricing").
--
-- A price version dated in the past changes no record by itself;
-- usage.reprice recomputes the records of a time range with the version and
-- tier in force at each one's time, in one transaction: the batches' cost
-- and price-id arrays, the rollups' costs for what is folded already (what
-- waits is folded later with its new costs), a row per run and per changed
-- record, and one `usage.repriced` event.

-- Every record with `p_start <= created_at < p_end` whose model's price key
-- is `p_key` (any when NULL), priced again: its batch and position, its
-- rollup keys, its cost (micro-USD) and price version before and after, and
-- whether its batch is folded. Read-only. Each distinct (model, time) finds
-- its version and rates once (a batch priced at one instant has one time),
-- not each record.
CREATE OR REPLACE FUNCTION usage._repriced(p_start timestamptz, p_end timestamptz, p_key text)
RETURNS TABLE (batch_id bigint, i integer, model text, epoch integer, agent_id text,
               lower_model text, day date, folded boolean, old_cost bigint, new_cost bigint,
               old_price_id bigint, new_price_id bigint)
LANGUAGE plpgsql STABLE SET jit = off SET work_mem = '256MB' AS $$
BEGIN
    RETURN QUERY
    WITH recs AS MATERIALIZED (
        SELECT r.batch_id, (r.id - r.batch_id + 1)::integer AS i, r.model, r.epoch,
               coalesce(r.agent_id, '') AS agent_id, lower(r.model) AS lm, r.created_at AS ts,
               r.prompt_tokens AS pt, r.completion_tokens AS ct, r.cached_prompt_tokens AS c,
               r.cache_write_tokens AS w, r.reasoning_tokens AS rs,
               (r.cost * 1000000)::bigint AS old_cost, r.price_id AS old_price_id,
               u.first_id IS NULL AS folded
        FROM usage.batches b
        LEFT JOIN usage.unfolded u ON u.first_id = b.first_id
        CROSS JOIN LATERAL usage.batch_records(b) r
        WHERE b.max_at >= p_start AND b.min_at < p_end
          AND r.created_at >= p_start AND r.created_at < p_end),
    k AS MATERIALIZED (
        SELECT x.lm, usage.price_key(x.lm) AS pk FROM (SELECT DISTINCT recs.lm FROM recs) x),
    pr AS MATERIALIZED (
        SELECT d.lm, d.ts, p.id, q.above, q.pp, q.cpp, q.cwp, q.cp, q.rp, q.top
        FROM (SELECT DISTINCT recs.lm, recs.ts FROM recs) d
        JOIN k ON k.lm = d.lm
        LEFT JOIN LATERAL usage.price_version(k.pk, d.ts) p ON true
        LEFT JOIN LATERAL usage.version_rates(p.id) q ON true
        WHERE p_key IS NULL OR k.pk = p_key)
    SELECT x.batch_id, x.i, x.model, x.epoch, x.agent_id, x.lm, (x.ts AT TIME ZONE 'UTC')::date,
           x.folded, x.old_cost,
           usage.cost_micros_top(x.pt, x.c, x.w, x.ct, x.rs, pr.pp[t.pos], pr.cpp[t.pos],
                                 pr.cwp[t.pos], pr.cp[t.pos], pr.rp[t.pos], pr.top[t.pos]),
           x.old_price_id, pr.id
    FROM recs x
    JOIN pr ON pr.lm = x.lm AND pr.ts = x.ts
    CROSS JOIN LATERAL (SELECT usage.tier_of(pr.above, x.pt) AS pos) t;
END
$$;

-- The summary a reprice answers (and its event carries).
CREATE OR REPLACE FUNCTION usage.reprice_json(p_id bigint, p_records bigint, p_changed bigint,
                                              p_previous numeric, p_new numeric)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'repriceId', p_id, 'records', p_records, 'changed', p_changed,
        'previousCost', round(coalesce(p_previous, 0), 6), 'newCost', round(coalesce(p_new, 0), 6),
        'difference', round(coalesce(p_new, 0) - coalesce(p_previous, 0), 6))
$$;

-- POST /usage/reprice: recomputes every record with `p_start <= createdAt <
-- p_end` (and whose model's price key is `p_model`, when given) with the
-- version and tier in force at its time. `changed` counts the records whose
-- cost or price version differs; only those are written. A dry run answers
-- the same figures and writes nothing (repriceId null). Running it again
-- changes nothing.
--
-- Concurrency: it holds the fold lock (a running fold finishes first; the
-- server's folds skip until it commits), so whether a batch is folded
-- cannot change under it: a folded batch's cost difference goes into the
-- rollups, a waiting one's is folded with its new costs later. Ingest takes
-- neither that lock nor any row it writes (batches are only ever inserted by
-- writers), so it goes on meanwhile; a batch that commits after the reprice
-- began is not repriced (it was priced when written, by the versions of
-- then). The rollup rows it adds to are written last, briefly. Only one
-- reprice runs at a time (the same lock).
CREATE OR REPLACE FUNCTION usage.reprice(p_start timestamptz, p_end timestamptz,
                                         p_model text DEFAULT NULL,
                                         p_dry_run boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql SET jit = off SET work_mem = '256MB' AS $$
DECLARE
    v_key text;
    v_id bigint;
    v_records bigint;
    v_changed bigint;
    v_previous numeric;
    v_new numeric;
    v_shard smallint := (pg_backend_pid() % 16)::smallint;
    v jsonb;
BEGIN
    IF p_start IS NULL OR p_end IS NULL OR p_end <= p_start THEN
        PERFORM ap.raise(400, 'invalid_range', 'start and end are required and end must be after start',
                         jsonb_build_object('start', p_start, 'end', p_end));
    END IF;
    IF p_model IS NOT NULL THEN
        PERFORM ap.check_ident('model', p_model);
        v_key := lower(p_model);
    END IF;
    IF coalesce(p_dry_run, false) THEN
        SELECT count(*), count(*) FILTER (WHERE x.new_cost IS DISTINCT FROM x.old_cost
                                            OR x.new_price_id IS DISTINCT FROM x.old_price_id),
               usage.usd(sum(x.old_cost)), usage.usd(sum(x.new_cost))
        INTO v_records, v_changed, v_previous, v_new
        FROM usage._repriced(p_start, p_end, v_key) x;
        RETURN usage.reprice_json(NULL, v_records, v_changed, v_previous, v_new);
    END IF;

    PERFORM pg_advisory_xact_lock(usage.fold_lock_key());
    -- (the run's id before anything is written: nextval takes no xid)
    v_id := nextval(pg_get_serial_sequence('usage.repricings', 'reprice_id'));
    -- One statement: the records priced again (read first, into the
    -- materialized `x`), then the writes, each from `x`.
    WITH x AS MATERIALIZED (
        SELECT * FROM usage._repriced(p_start, p_end, v_key)),
    ch AS MATERIALIZED (
        SELECT * FROM x
        WHERE x.new_cost IS DISTINCT FROM x.old_cost
           OR x.new_price_id IS DISTINCT FROM x.old_price_id),
    -- per batch: the positions changed, their new costs, price ids, models
    g AS (
        SELECT ch.batch_id, array_agg(ch.i ORDER BY ch.i) AS idx,
               array_agg(ch.new_cost ORDER BY ch.i) AS costs,
               array_agg(ch.new_price_id ORDER BY ch.i) AS pids,
               array_agg(ch.model ORDER BY ch.i) AS models
        FROM ch GROUP BY ch.batch_id),
    upd AS (
        UPDATE usage.batches b SET
            cost_micros = (
                SELECT array_agg(CASE WHEN m.i IS NULL THEN o.c ELSE m.c END ORDER BY o.i)
                FROM unnest(b.cost_micros) WITH ORDINALITY AS o(c, i)
                LEFT JOIN unnest(g.idx, g.costs) AS m(i, c) ON m.i = o.i),
            price_ids = CASE WHEN b.price_ids IS NULL THEN NULL ELSE (
                SELECT array_agg(CASE WHEN m.i IS NULL THEN o.p ELSE m.p END ORDER BY o.i)
                FROM unnest(b.price_ids) WITH ORDINALITY AS o(p, i)
                LEFT JOIN unnest(g.idx, g.pids) AS m(i, p) ON m.i = o.i) END,
            -- a batch priced at one instant: every record of a model has the
            -- same time, so the same new version
            key_price_ids = CASE WHEN b.key_models IS NULL THEN NULL ELSE (
                SELECT array_agg(CASE WHEN m.model IS NULL THEN o.p ELSE m.p END ORDER BY o.k)
                FROM unnest(b.key_models, b.key_price_ids) WITH ORDINALITY AS o(model, p, k)
                LEFT JOIN (SELECT DISTINCT ON (z.model) z.model, z.p
                           FROM unnest(g.models, g.pids) AS z(model, p)) m
                       ON m.model = o.model) END
        FROM g
        WHERE b.first_id = g.batch_id
        RETURNING b.first_id),
    cc AS (
        INSERT INTO usage.cost_changes (reprice_id, record_id, previous_cost, new_cost)
        SELECT v_id, ch.batch_id + ch.i - 1, usage.usd(ch.old_cost), usage.usd(ch.new_cost)
        FROM ch
        RETURNING 1),
    -- the folded records' cost differences, per rollup key
    d AS MATERIALIZED (
        SELECT ch.epoch, ch.agent_id, ch.lower_model, ch.day,
               GROUPING(ch.epoch, ch.agent_id, ch.lower_model, ch.day) AS kind,
               usage.usd(sum(coalesce(ch.new_cost, 0) - coalesce(ch.old_cost, 0))) AS delta
        FROM ch WHERE ch.folded
        GROUP BY GROUPING SETS ((ch.epoch, ch.agent_id), (ch.epoch, ch.lower_model), (ch.day))
        HAVING sum(coalesce(ch.new_cost, 0) - coalesce(ch.old_cost, 0)) <> 0),
    ua AS (
        INSERT INTO usage.agent_rollup AS r (epoch, agent_id, shard, cost)
        SELECT d.epoch, d.agent_id, v_shard, d.delta FROM d WHERE d.kind = 3
        ORDER BY d.epoch, d.agent_id COLLATE "C"
        ON CONFLICT (epoch, agent_id, shard) DO UPDATE SET cost = r.cost + excluded.cost
        RETURNING 1),
    um AS (
        INSERT INTO usage.model_rollup AS r (epoch, model, shard, cost)
        SELECT d.epoch, d.lower_model, v_shard, d.delta FROM d WHERE d.kind = 5
        ORDER BY d.epoch, d.lower_model COLLATE "C"
        ON CONFLICT (epoch, model, shard) DO UPDATE SET cost = r.cost + excluded.cost
        RETURNING 1),
    ud AS (
        INSERT INTO usage.daily_rollup AS r (day, shard, cost)
        SELECT d.day, v_shard, d.delta FROM d WHERE d.kind = 14
        ORDER BY d.day
        ON CONFLICT (day, shard) DO UPDATE SET cost = r.cost + excluded.cost
        RETURNING 1)
    -- (the writing parts run to completion whether read or not)
    SELECT count(*), (SELECT count(*) FROM ch), usage.usd(sum(x.old_cost)),
           usage.usd(sum(x.new_cost))
    INTO v_records, v_changed, v_previous, v_new
    FROM x;
    INSERT INTO usage.repricings (reprice_id, at, range_start, range_end, model, records, changed,
                                  previous_cost, new_cost)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, now(), p_start, p_end, v_key, v_records, v_changed,
            round(coalesce(v_previous, 0), 6), round(coalesce(v_new, 0), 6));
    v := usage.reprice_json(v_id, v_records, v_changed, v_previous, v_new);
    PERFORM feed.emit_data('usage.repriced',
        v || jsonb_build_object('start', ap.ts(p_start), 'end', ap.ts(p_end), 'model', v_key));
    RETURN v;
END
$$;
