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
-- computes exactly: tokens are at most 10^9 and a record's parts add up to
-- its prompt and completion tokens, so the prompt parts and the completion
-- parts each stay below 4 * 10^18, their sum below 2^63, up to 4,000 USD per
-- million tokens.
CREATE OR REPLACE FUNCTION usage.int_price_max()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 4000000000::bigint $$;

-- THE cost formula (docs/usage.md), in micro-USD rounded half up (a cost has
-- 6 decimals): the uncached prompt tokens at the prompt price, cached and
-- cache-write tokens at theirs, non-reasoning completion tokens at the
-- completion price and reasoning tokens at theirs, divided by a million.
-- Counts: pt prompt, c cached prompt, w cache write, ct completion,
-- r reasoning (NULL counts as 0); prices in pico-USD per token of the
-- record's price version and tier (usage.rates_of, usage.tier_of), and
-- `top`, the greatest of the five. NULL when unpriced. Exact numeric
-- arithmetic, done in bigints when the prices allow (`top` at most
-- usage.int_price_max: the same numbers, without numeric's cost). A record
-- without the breakdown (c, w and r NULL: a batch where no record gives
-- them) takes the shorter bigint branch, the same formula with those terms 0.
-- Inlined where it is called: each price is read where the branch taken
-- reads it, so a caller that reads the prices from arrays per record passes
-- `top` from usage.rates_of rather than have the prices read again to find it.
CREATE OR REPLACE FUNCTION usage.cost_micros_top(pt bigint, c bigint, w bigint, ct bigint,
                                                 r bigint, pp bigint, cpp bigint, cwp bigint,
                                                 cp bigint, rp bigint, top bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN top > usage.int_price_max()
                THEN round(((pt - coalesce(c, 0) - coalesce(w, 0))::numeric * pp
                            + coalesce(c, 0)::numeric * cpp + coalesce(w, 0)::numeric * cwp
                            + (ct - coalesce(r, 0))::numeric * cp
                            + coalesce(r, 0)::numeric * rp) / 1000000)::bigint
                WHEN c IS NULL AND w IS NULL AND r IS NULL
                THEN (pt * pp + ct * cp + 500000) / 1000000
                ELSE ((pt - coalesce(c, 0) - coalesce(w, 0)) * pp + coalesce(c, 0) * cpp
                      + coalesce(w, 0) * cwp + (ct - coalesce(r, 0)) * cp + coalesce(r, 0) * rp
                      + 500000) / 1000000 END
$$;

-- usage.cost_micros_top with `top` found from the five prices.
CREATE OR REPLACE FUNCTION usage.cost_micros(pt bigint, c bigint, w bigint, ct bigint, r bigint,
                                             pp bigint, cpp bigint, cwp bigint,
                                             cp bigint, rp bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT usage.cost_micros_top(pt, c, w, ct, r, pp, cpp, cwp, cp, rp,
                                 greatest(pp, cpp, cwp, cp, rp))
$$;

-- Which of a price version's rates a record of `pt` prompt tokens pays: 1
-- for the base price, k + 1 for tier k, the highest tier whose
-- abovePromptTokens `pt` exceeds (`p_above`: usage.version_rates' above,
-- ascending; width_bucket counts the thresholds below pt in C). Inlined.
CREATE OR REPLACE FUNCTION usage.tier_of(p_above bigint[], pt bigint)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(p_above) = 0 THEN 1 ELSE width_bucket(pt - 1, p_above) + 1 END
$$;
