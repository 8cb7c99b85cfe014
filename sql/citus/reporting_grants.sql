-- The reporting role's rights on a Citus cluster. Applied after the
-- distribution plan (sql/citus/distribute.sql), and again after shards are
-- moved or split (a new shard does not carry these grants):
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/citus/reporting_grants.sql
--
-- A reporting view runs with its owner's rights, but Citus sends each
-- shard's part of it to the node holding the shard as the role that asked,
-- and that node checks the role's own rights on the shard. So the role gets
-- SELECT on the shards of every distributed and reference table a reporting
-- view reads (through other views too), and USAGE on those tables' schemas.
-- It gets no SELECT on the tables themselves: connected to the coordinator,
-- it still reads only the reporting views. (USAGE on a schema lets it call
-- the schema's functions, which run with its rights and so cannot read or
-- write the tables either.)

BEGIN;

CREATE TEMP TABLE read_by_reporting ON COMMIT DROP AS
WITH RECURSIVE read_by AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v'
    UNION
    SELECT d.refobjid
    FROM read_by v
    JOIN pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid)
SELECT p.logicalrelid AS rel
FROM pg_dist_partition p
WHERE p.logicalrelid IN (SELECT oid FROM read_by);

-- (made on the coordinator, which passes schema grants on to the workers)
DO $$
DECLARE
    v_schemas text;
BEGIN
    SELECT string_agg(DISTINCT quote_ident(c.relnamespace::regnamespace::text), ', ')
    INTO v_schemas
    FROM read_by_reporting r JOIN pg_class c ON c.oid = r.rel;
    IF v_schemas IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %s TO agentplane_reporting', v_schemas);
    END IF;
END
$$;

-- (run_command_on_placements reports a failure as a row, not an error)
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT r.rel, x.nodename, x.nodeport, x.result
             FROM read_by_reporting r,
                  run_command_on_placements(r.rel, 'GRANT SELECT ON %s TO agentplane_reporting') x
             WHERE NOT x.success LOOP
        RAISE EXCEPTION 'granting SELECT on a shard of % on %:% failed: %',
            v.rel, v.nodename, v.nodeport, v.result;
    END LOOP;
END
$$;

COMMIT;
