-- Cheaper forms of the same rules on the hottest tables (issue 8, measured
-- with callgrind on credits.spend; see README "Benchmarks").
--
-- 1. A table CHECK constraint is re-parsed from its stored text and
--    re-planned at the start of every statement that writes the table, which
--    made the three CHECKs of credits.transactions cost about 13% of a spend.
--    A domain's constraint is parsed once per session (the type cache), so
--    the single-column rules become domains. The one cross-column rule
--    (amount <> 0 unless usage or refill) moves into credits._post, the only
--    writer of such rows (sql/credits.sql).
-- 2. PostgreSQL's regex engine expands a bounded repetition such as {1,128}
--    into a large automaton: each match cost about 7 us. The identifier checks
--    take the length apart and the regex unbounded (as ap.is_ident does).

-- 3. A credit movement's credits.changed event names its ledger row instead
--    of copying it into a JSON body: the body is rendered from the row when
--    the feed is read (feed.read_range). Building that JSON cost a tenth of a
--    spend; the relay renders a whole batch of events in one query.
ALTER TABLE feed.events ADD COLUMN ledger_id bigint;
COMMENT ON COLUMN feed.events.ledger_id IS
    'credits.changed of a ledger row: the row''s id in credits.transactions (with user_id); the body is rendered from it when read';

-- What credits.spend answers (sql/credits.sql says why a named type).
CREATE TYPE credits.spent AS (transaction_id bigint, cost bigint, balance bigint);

-- The reporting views read these columns; sql/reporting.sql recreates them
-- after the migrations.
DROP VIEW IF EXISTS reporting.credit_ledger CASCADE;
DROP VIEW IF EXISTS reporting.user_balances CASCADE;

CREATE DOMAIN credits.tx_kind AS text
    CHECK (VALUE IN ('refill', 'top_up', 'usage', 'grant', 'refund', 'adjustment'));
CREATE DOMAIN credits.idempotency_key AS text
    CHECK (length(VALUE) BETWEEN 1 AND 255);

ALTER TABLE credits.transactions
    DROP CONSTRAINT transactions_check,
    DROP CONSTRAINT transactions_idempotency_key_check,
    DROP CONSTRAINT transactions_kind_check,
    ALTER COLUMN kind TYPE credits.tx_kind,
    ALTER COLUMN idempotency_key TYPE credits.idempotency_key;

ALTER TABLE usage.model_prices
    DROP CONSTRAINT model_prices_model_check,
    ADD CONSTRAINT model_prices_model_check
        CHECK (model = lower(model) AND length(model) BETWEEN 1 AND 128
               AND model ~ '^[a-z0-9._:@/-]+$');
ALTER TABLE agents.agents
    DROP CONSTRAINT agents_name_ident,
    ADD CONSTRAINT agents_name_ident
        CHECK (length(name) BETWEEN 1 AND 128 AND name ~ '^[A-Za-z0-9._:@/-]+$');
ALTER TABLE agents.threads
    DROP CONSTRAINT threads_id_check,
    ADD CONSTRAINT threads_id_check
        CHECK (length(id) BETWEEN 1 AND 128 AND id ~ '^[A-Za-z0-9._:@/-]+$');
ALTER TABLE agents.messages
    DROP CONSTRAINT messages_from_agent_check,
    DROP CONSTRAINT messages_to_agent_check,
    DROP CONSTRAINT messages_payload_type_check,
    ADD CONSTRAINT messages_from_agent_check
        CHECK (length(from_agent) BETWEEN 1 AND 128 AND from_agent ~ '^[A-Za-z0-9._:@/-]+$'),
    ADD CONSTRAINT messages_to_agent_check
        CHECK (length(to_agent) BETWEEN 1 AND 128 AND to_agent ~ '^[A-Za-z0-9._:@/-]+$'),
    ADD CONSTRAINT messages_payload_type_check
        CHECK (length(payload_type) BETWEEN 1 AND 128
               AND payload_type ~ '^[A-Za-z0-9._:@/-]+$');
