-- Prices that match the bill: a record's token breakdown (cached prompt,
-- cache write, reasoning), price versions with prices for each part and
-- long-context tiers, and repricing of past records (docs/usage.md).
--
-- Every existing record keeps its cost and price version; its new counts
-- read as 0 (a batch's breakdown arrays are NULL: no record of it gave one).

-- 1. Price versions: a price per part (NULL: the prompt price for the two
--    cache parts, the completion price for reasoning) and tiers, a JSON array
--    of {abovePromptTokens, promptPerMillion, completionPerMillion,
--    cachedPromptPerMillion, cacheWritePerMillion, reasoningPerMillion}
--    sorted by abovePromptTokens (NULL: none). Each version is immutable.
ALTER TABLE usage.model_prices
    ADD COLUMN cached_prompt_per_million numeric(20, 6)
        CHECK (cached_prompt_per_million BETWEEN 0 AND 1000000000),
    ADD COLUMN cache_write_per_million numeric(20, 6)
        CHECK (cache_write_per_million BETWEEN 0 AND 1000000000),
    ADD COLUMN reasoning_per_million numeric(20, 6)
        CHECK (reasoning_per_million BETWEEN 0 AND 1000000000),
    ADD COLUMN tiers jsonb CHECK (tiers IS NULL OR jsonb_typeof(tiers) = 'array');

-- 2. The shipped prices of the parts, as new versions of the keys they
--    concern, effective from the same instant as the shipped defaults (and
--    so found first: same effective_from, higher id). Records already
--    written keep the version they were costed at; a reprice of their range
--    moves them to these (a record without breakdown costs the same).
INSERT INTO usage.model_prices (model, provider, prompt_per_million, completion_per_million,
                                cached_prompt_per_million, cache_write_per_million,
                                reasoning_per_million, tiers, effective_from)
VALUES ('gpt-4o',          'openai',    2.5,  10,  1.25,  NULL,  NULL, NULL, '1970-01-01T00:00:00Z'),
       ('gpt-4o-mini',     'openai',    0.15, 0.6, 0.075, NULL,  NULL, NULL, '1970-01-01T00:00:00Z'),
       ('claude-sonnet-4', 'anthropic', 3,    15,  0.30,  3.75,  NULL,
        '[{"abovePromptTokens": 200000, "promptPerMillion": 6, "completionPerMillion": 22.5,
           "cachedPromptPerMillion": 0.6, "cacheWritePerMillion": 7.5,
           "reasoningPerMillion": null}]', '1970-01-01T00:00:00Z'),
       ('claude-opus-4',   'anthropic', 15,   75,  1.50,  18.75, NULL, NULL, '1970-01-01T00:00:00Z'),
       ('o3-mini',         'openai',    1.1,  4.4, 0.55,  NULL,  NULL, NULL, '1970-01-01T00:00:00Z');

-- 3. A batch's breakdown: one array per count, element i for record i; NULL
--    when no record of the batch gave that count (all 0, the usual batch:
--    nothing is stored for it).
ALTER TABLE usage.batches
    ADD COLUMN cached_prompt_tokens bigint[],
    ADD COLUMN cache_write_tokens bigint[],
    ADD COLUMN reasoning_tokens bigint[];
ALTER TABLE usage.batches
    ALTER cached_prompt_tokens SET COMPRESSION lz4, ALTER cache_write_tokens SET COMPRESSION lz4,
    ALTER reasoning_tokens SET COMPRESSION lz4;

-- 4. The new counts in the budgets and the rollups (0 for what is folded).
ALTER TABLE usage.thread_budgets
    ADD COLUMN cached_prompt_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage.agent_rollup
    ADD COLUMN cached_prompt_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage.model_rollup
    ADD COLUMN cached_prompt_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage.daily_rollup
    ADD COLUMN cached_prompt_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0;
ALTER TYPE usage.fold_sum
    ADD ATTRIBUTE cached_prompt_tokens bigint,
    ADD ATTRIBUTE cache_write_tokens bigint,
    ADD ATTRIBUTE reasoning_tokens bigint;

-- 5. Repricing runs and the records they changed. Keyed by the run; a
--    changed record by (reprice_id, record_id).
CREATE TABLE usage.repricings (
    reprice_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    range_start    timestamptz NOT NULL,
    range_end      timestamptz NOT NULL,
    model          text,
    records        bigint NOT NULL,
    changed        bigint NOT NULL,
    previous_cost  numeric NOT NULL,
    new_cost       numeric NOT NULL
);
CREATE TABLE usage.cost_changes (
    reprice_id     bigint NOT NULL,
    record_id      bigint NOT NULL,
    previous_cost  numeric(20, 6),
    new_cost       numeric(20, 6),
    PRIMARY KEY (reprice_id, record_id)
);

-- 6. Signatures this release replaces (sql/ creates the new ones). The
--    record view's functions change their columns, so they and the views
--    built on them go; sql/ creates them all again.
DROP FUNCTION IF EXISTS usage.batch_records(usage.batches) CASCADE;
DROP FUNCTION IF EXISTS usage.thread_usage(text);
DROP FUNCTION IF EXISTS usage.budget_json(text, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS usage.totals_json(numeric, numeric, numeric, numeric, numeric, numeric);
DROP FUNCTION IF EXISTS usage.day_json(date, numeric, numeric, numeric);
DROP FUNCTION IF EXISTS usage.set_price(text, text, numeric, numeric);
DROP FUNCTION IF EXISTS usage.price_json(usage.model_prices);
DROP FUNCTION IF EXISTS usage.cost_micros(bigint, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS usage.cost_micros_int(bigint, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS usage._refuse_first_bad_record(text[], text[], text[], text[], bigint[],
                                                       bigint[], bigint[], text[], text[], jsonb[]);
DROP FUNCTION IF EXISTS usage._insert(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[]);
DROP FUNCTION IF EXISTS usage.record(text, text, text, text, bigint, bigint, bigint,
                                     text, text, jsonb, timestamptz);
DROP FUNCTION IF EXISTS usage.record_batch(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                           text[], text[], jsonb[], timestamptz[]);
