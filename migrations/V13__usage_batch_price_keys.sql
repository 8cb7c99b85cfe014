-- A usage batch priced at one instant keeps each of its models' price once,
-- not once per record (issue 8, figure 5; README "Benchmarks").
--
-- Such a batch (no record gives `at`: the usual one) prices every record of
-- a model with the same price version, so the price id, and the provider of
-- a record that names none, are the model's. Collecting them per record was
-- about an eighth of a batch's insert (two more arrays aggregated, stored
-- and compressed). Now the batch keeps, per distinct model, the price id and
-- provider (key_models, key_price_ids, key_providers); its price_ids is NULL
-- and its providers is as given (NULL when no record gives one). A reader
-- takes a record's value when it has one, else its model's
-- (usage.batch_records). Batches with back-dated records or more than eight
-- models (a reader finds a record's model among the keys by a search), and
-- every batch written before this migration, keep their per-record arrays
-- and no keys.
ALTER TABLE usage.batches
    ADD COLUMN key_models text[] COLLATE "C",
    ADD COLUMN key_price_ids bigint[],
    ADD COLUMN key_providers text[],
    ALTER COLUMN price_ids DROP NOT NULL,
    ALTER COLUMN providers DROP NOT NULL,
    -- NOT VALID: every row from before has its per-record arrays (they were
    -- NOT NULL) and no keys, so scanning the table under its lock would
    -- check nothing; new rows are checked.
    ADD CONSTRAINT batches_keys_whole CHECK (
        (key_models IS NULL AND key_price_ids IS NULL AND key_providers IS NULL AND price_ids IS NOT NULL
         AND providers IS NOT NULL)
        OR (key_models IS NOT NULL AND key_price_ids IS NOT NULL AND key_providers IS NOT NULL
            AND cardinality(key_models) = cardinality(key_price_ids)
            AND cardinality(key_models) = cardinality(key_providers) AND price_ids IS NULL)) NOT VALID;
COMMENT ON COLUMN usage.batches.key_models IS
    'the distinct models of a batch priced at one instant (else NULL); key_price_ids and key_providers hold each one''s price id and provider';
COMMENT ON COLUMN usage.batches.price_ids IS
    'each record''s price id; NULL when the batch has key_models (then its model''s)';
COMMENT ON COLUMN usage.batches.providers IS
    'each record''s provider; with key_models, as given (NULL element or NULL array: its model''s)';
