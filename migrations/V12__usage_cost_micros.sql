-- Usage costs are stored as whole micro-USD (bigint), not numeric (issue 8,
-- figure 5; README "Benchmarks").
--
-- A record's cost has at most 6 decimals (CONTRACT §3), so cost * 10^6 is an
-- integer and nothing is lost. Pricing a batch and folding it then add
-- integers: numeric arithmetic was the largest single part of a batch's
-- insert (about 20% of it, five numeric operations per record) and of the
-- fold's sums. Readers still see `cost` as numeric with 6 decimals
-- (usage.batch_records converts).
CREATE FUNCTION usage._v12_micros(c numeric[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg((x * 1000000)::bigint ORDER BY i) FROM unnest(c) WITH ORDINALITY AS u(x, i)
$$;
ALTER TABLE usage.batches ALTER COLUMN costs TYPE bigint[] USING usage._v12_micros(costs);
ALTER TABLE usage.batches RENAME COLUMN costs TO cost_micros;
ALTER TABLE usage.batches ALTER COLUMN cost_micros SET COMPRESSION lz4;
DROP FUNCTION usage._v12_micros(numeric[]);

-- So that every cost fits: a price is at most 10^9 USD per million tokens
-- ($1,000 a token; tokens per record are at most 10^9). usage.set_price
-- refuses more with a 400. NOT VALID: a row from before is not checked
-- (none that high is expected; the shipped prices are below 100).
ALTER TABLE usage.model_prices
    ADD CONSTRAINT model_prices_at_most_1e9
    CHECK (prompt_per_million <= 1000000000 AND completion_per_million <= 1000000000) NOT VALID;
