-- Credits (docs/credits.md): calendar periods and balance buckets, the
-- helpers every credits function uses to place a movement in time.
--
-- The credits files are applied in this order (src/db/migrate.rs): periods,
-- pricing, users, ledger, spend, movements, holds. Tables:
-- migrations/V2__credits.sql.

-- The calendar month (UTC) of an instant, as its first day.
CREATE OR REPLACE FUNCTION credits.month_of(p timestamptz)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('month', p AT TIME ZONE 'UTC')::date
$$;

-- The first instant (UTC) of a month given by its first day.
CREATE OR REPLACE FUNCTION credits.month_start(p date)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p::timestamp AT TIME ZONE 'UTC'
$$;

-- Which balance row a movement of a user with this policy counts in.
CREATE OR REPLACE FUNCTION credits.bucket_of(p_policy text, p_period date)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_policy = 'reset' THEN p_period ELSE '-infinity'::date END
$$;
