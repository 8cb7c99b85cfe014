-- Credits: block prices. A block's price list, how a filter matches a run's
-- input, and the cost of a run (used by spends and holds).

------------------------------------------------------------------------------
-- Filter matching and block prices
------------------------------------------------------------------------------

-- Recursive containment where null, missing and "" are alike, and a missing
-- nested object counts as {}. Arrays use PostgreSQL's containment.
CREATE OR REPLACE FUNCTION credits._filter_rec(p_filter jsonb, p_input jsonb)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    k  text;
    fv jsonb;
    iv jsonb;
BEGIN
    IF p_input IS NULL OR p_input = 'null'::jsonb OR p_input = '""'::jsonb THEN
        p_input := '{}'::jsonb;
    END IF;
    IF jsonb_typeof(p_filter) <> 'object' THEN
        RETURN p_input = p_filter;
    END IF;
    IF jsonb_typeof(p_input) <> 'object' THEN
        RETURN false;
    END IF;
    FOR k, fv IN SELECT e.key, e.value FROM jsonb_each(p_filter) e LOOP
        iv := p_input -> k;
        IF fv = 'null'::jsonb OR fv = '""'::jsonb THEN
            IF NOT (iv IS NULL OR iv = 'null'::jsonb OR iv = '""'::jsonb) THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(fv) = 'object' THEN
            IF NOT credits._filter_rec(fv, iv) THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(fv) = 'array' THEN
            IF iv IS NULL OR jsonb_typeof(iv) <> 'array' OR NOT (iv @> fv) THEN
                RETURN false;
            END IF;
        ELSIF iv IS NULL OR iv <> fv THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- Whether a cost entry's filter is contained in a block input. Plain jsonb
-- containment implies a match, so it is tried first (it is the common case:
-- the input carries the platform credential the filter names).
CREATE OR REPLACE FUNCTION credits.filter_matches(p_filter jsonb, p_input jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_filter IS NULL OR p_filter = '{}'::jsonb
        OR coalesce(p_input @> p_filter, false)
        OR credits._filter_rec(p_filter, p_input)
$$;

-- The price of one run given a block's cost entries: the first entry whose
-- filter matches; 0 when none does. (plpgsql: its plan is cached per
-- session, unlike a non-inlined SQL function's.)
-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS credits.cost_of(jsonb, jsonb, double precision);
CREATE FUNCTION credits.cost_of(p_costs jsonb, p_input jsonb,
                                p_duration_seconds double precision)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e jsonb;
    i int := 0;
    n int := coalesce(jsonb_array_length(p_costs), 0);
BEGIN
    p_input := coalesce(p_input, '{}'::jsonb);
    WHILE i < n LOOP
        e := p_costs -> i;
        IF credits.filter_matches(e -> 'filter', p_input) THEN
            RETURN CASE e ->> 'costType'
                WHEN 'run' THEN (e ->> 'amount')::bigint
                WHEN 'byte' THEN (e ->> 'amount')::bigint
                     * ceil(octet_length(p_input::text) / 1024.0)::bigint
                WHEN 'second' THEN (e ->> 'amount')::bigint
                     * ceil(coalesce(p_duration_seconds, 0))::bigint
                ELSE 0 END;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN 0;
END
$$;

-- The price of running block p_block_id with an input (0 for an unpriced block).
-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS credits.price(text, jsonb, double precision);
CREATE FUNCTION credits.price(p_block_id text, p_input jsonb,
                              p_duration_seconds double precision DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    v bigint;
BEGIN
    SELECT credits.cost_of(c.costs, p_input, p_duration_seconds) INTO v
    FROM credits.block_costs c WHERE c.block_id = p_block_id;
    RETURN coalesce(v, 0);
END
$$;

CREATE OR REPLACE FUNCTION credits.block_costs_json(c anyelement)  -- a credits.block_costs row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('blockId', c.block_id, 'costs', c.costs,
                              'updatedAt', ap.ts(c.updated_at))
$$;

CREATE OR REPLACE FUNCTION credits.put_block_costs(p_block_id text, p_costs jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
    v_costs jsonb := '[]'::jsonb;
    e       jsonb;
    v_amt   numeric;
    v_row   credits.block_costs;
BEGIN
    PERFORM ap.check_ident('blockId', p_block_id);
    IF p_costs IS NULL OR jsonb_typeof(p_costs) <> 'array' THEN
        PERFORM ap.raise(400, 'invalid_costs', 'costs must be an array');
    END IF;
    IF jsonb_array_length(p_costs) > 100 THEN
        PERFORM ap.raise(400, 'invalid_costs', 'at most 100 cost entries per block');
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(p_costs) LOOP
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM ap.raise(400, 'invalid_costs', 'each cost entry must be an object');
        END IF;
        IF coalesce(e->>'costType', '') NOT IN ('run', 'byte', 'second') THEN
            PERFORM ap.raise(400, 'invalid_cost_type', 'costType must be run, byte or second',
                             jsonb_build_object('costType', e->'costType'));
        END IF;
        IF jsonb_typeof(e->'amount') IS DISTINCT FROM 'number' THEN
            PERFORM ap.raise(400, 'invalid_amount', 'amount must be an integer');
        END IF;
        v_amt := (e->>'amount')::numeric;
        IF v_amt <> trunc(v_amt) OR v_amt < 0 OR v_amt > 9223372036854775807 THEN
            PERFORM ap.raise(400, 'invalid_amount',
                             'amount must be an integer between 0 and 9223372036854775807',
                             jsonb_build_object('amount', e->'amount'));
        END IF;
        IF e ? 'filter' AND jsonb_typeof(e->'filter') NOT IN ('object', 'null') THEN
            PERFORM ap.raise(400, 'invalid_filter', 'filter must be an object');
        END IF;
        v_costs := v_costs || jsonb_build_array(jsonb_build_object(
            'costType', e->>'costType',
            'amount', v_amt::bigint,
            'filter', coalesce(nullif(e->'filter', 'null'::jsonb), '{}'::jsonb)));
    END LOOP;
    INSERT INTO credits.block_costs AS c (block_id, costs)
    VALUES (p_block_id, v_costs)
    ON CONFLICT (block_id) DO UPDATE SET costs = EXCLUDED.costs, updated_at = v_now
    RETURNING * INTO v_row;
    PERFORM feed.emit_data('credits.block_costs_updated',
                           jsonb_build_object('blockId', p_block_id, 'costs', v_costs));
    RETURN credits.block_costs_json(v_row);
END
$$;

CREATE OR REPLACE FUNCTION credits.get_block_costs(p_block_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row credits.block_costs;
BEGIN
    PERFORM ap.check_ident('blockId', p_block_id);
    SELECT * INTO v_row FROM credits.block_costs WHERE block_id = p_block_id;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'block_costs_not_found', 'no prices are set for this block',
                         jsonb_build_object('blockId', p_block_id));
    END IF;
    RETURN credits.block_costs_json(v_row);
END
$$;

CREATE OR REPLACE FUNCTION credits.list_block_costs(p_limit int, p_offset int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items jsonb;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100 OR p_offset IS NULL OR p_offset < 0 THEN
        PERFORM ap.raise(400, 'invalid_paging', 'limit must be 1-100 and offset >= 0');
    END IF;
    SELECT coalesce(jsonb_agg(credits.block_costs_json(c::credits.block_costs) ORDER BY c.block_id), '[]'::jsonb)
    INTO v_items
    FROM (SELECT * FROM credits.block_costs ORDER BY block_id LIMIT p_limit OFFSET p_offset) c;
    RETURN jsonb_build_object('blockCosts', v_items,
                              'count', jsonb_array_length(v_items),
                              'total', (SELECT count(*) FROM credits.block_costs),
                              'offset', p_offset, 'limit', p_limit);
END
$$;
