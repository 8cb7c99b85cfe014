-- Usage ingest: the arithmetic of a record's cost. Integer sums and prices
-- in pico-USD per token, so every cost is exact and cheap to compute; the
-- writers here and the reads (usage_reads.sql) call these.

-- A sum of bigints that stays a bigint: int8pl as the transition, so each
-- group's state is one by-value integer (sum(bigint) keeps a 128-bit state per
-- group and returns numeric). Errors on overflow, as int8pl does; a fold's
-- sums are far below it (at most usage.max_count() per record).
CREATE OR REPLACE AGGREGATE usage.total(bigint) (
    SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE);

-- A price as an integer: pico-USD per token (USD per million tokens, which
-- has 6 decimals, times 10^6). At most 10^15 (usage.model_prices' check).
CREATE OR REPLACE FUNCTION usage.pico_per_token(p_per_million numeric)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_per_million * 1000000)::bigint
$$;

-- The largest price (pico-USD per token) whose costs integer arithmetic
-- computes exactly: tokens are at most 10^9, so pt * pp + ct * cp stays
-- below 2^63 up to 4,000 USD per million tokens.
CREATE OR REPLACE FUNCTION usage.int_price_max()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 4000000000::bigint $$;

-- usage.cost_micros by integer arithmetic alone: for prices at most
-- usage.int_price_max(). Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.cost_micros_int(pt bigint, ct bigint, pp bigint, cp bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (pt * pp + ct * cp + 500000) / 1000000
$$;

-- The cost of one record in micro-USD (a record's cost has at most 6
-- decimals, rounded half up), at prices `pp` / `cp` in pico-USD per prompt /
-- completion token (usage.pico_per_token); NULL when unpriced. Integer
-- arithmetic when it cannot overflow (usage.int_price_max), else numeric;
-- both exact. Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.cost_micros(pt bigint, ct bigint, pp bigint, cp bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pp <= usage.int_price_max() AND cp <= usage.int_price_max()
                THEN usage.cost_micros_int(pt, ct, pp, cp)
                ELSE round((pt::numeric * pp + ct::numeric * cp) / 1000000)::bigint END
$$;
