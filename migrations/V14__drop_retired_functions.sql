-- Signatures that earlier versions of sql/ created and that no version
-- creates any more. Migrations run before sql/ on every start, so these are
-- gone before the current functions are created: no call can resolve to a
-- stale overload, and no overload can make a current call ambiguous. On a
-- database that never had them, each line does nothing.
--
-- Signatures sql/ still creates are not here: sql/ drops and creates those
-- itself, in the same transaction as the rest of the stored logic.

-- feed: emit before p_ledger_id (with and without p_notify), emit_data
-- before p_notify, event_json before its body parameter, relay_poll and
-- read_range before their current parameter lists.
DROP FUNCTION IF EXISTS feed.emit(text, jsonb, text, text[], text, text, text, text);
DROP FUNCTION IF EXISTS feed.emit(text, jsonb, text, text[], text, text, text, text, boolean);
DROP FUNCTION IF EXISTS feed.emit_data(text, jsonb, text, text, text, text, text);
DROP FUNCTION IF EXISTS feed.event_json(feed.events);
DROP FUNCTION IF EXISTS feed.relay_poll(bigint, bigint, bigint, bigint[], int);
DROP FUNCTION IF EXISTS feed.read_range(bigint, bigint, int);

-- usage: an earlier record writer, cost helper and folder (usage._insert,
-- usage.fold(int, int, interval, interval) and usage._fold(bigint[]) replace
-- them).
DROP FUNCTION IF EXISTS usage._ingest(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[]);
DROP FUNCTION IF EXISTS usage.cost_of(bigint, bigint, numeric, numeric);
DROP FUNCTION IF EXISTS usage._fold(bigint[], bigint[]);
DROP FUNCTION IF EXISTS usage.fold(integer);

-- agents and variants: AgentConfig's fields and rules have one home, the
-- agents domain (agents.config_fields, agents.normalize_config,
-- agents.config_of, agents.config_json, agents.must_get).
DROP FUNCTION IF EXISTS agents.config_json(agents.agents);
DROP FUNCTION IF EXISTS variants.config_fields();
DROP FUNCTION IF EXISTS variants.normalize_config(jsonb, text[]);
DROP FUNCTION IF EXISTS variants.config_of(jsonb);
DROP FUNCTION IF EXISTS variants.config_json(jsonb);
DROP FUNCTION IF EXISTS variants.agent(text, boolean);

-- Keys: revocation takes whether the last admin key must stay; open mode
-- asks whether any key was ever created, not whether one is active.
DROP FUNCTION IF EXISTS auth.revoke_key(uuid);
DROP FUNCTION IF EXISTS auth.any_active_key();
-- Usage history takes the user a bound key is limited to.
DROP FUNCTION IF EXISTS usage.history(timestamptz, timestamptz, text, text, text, integer, bigint);
