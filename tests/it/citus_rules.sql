-- The rules Citus enforces when it distributes tables, read from the catalog
-- of a migrated database and the plan loaded in the temp table citus_plan
-- (tbl, kind: distributed | reference | local, col, colocate_with).
-- One row per violation.
WITH RECURSIVE
plan AS (
    SELECT p.*, to_regclass(p.tbl) AS rel FROM citus_plan p),
tables AS (
    SELECT c.oid AS rel, n.nspname || '.' || c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT (n.nspname = 'public' AND c.relname = 'refinery_schema_history')),
dist AS (
    SELECT p.rel, p.tbl, p.col, p.colocate_with, a.attnum, a.atttypid, a.attcollation,
           format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attcollation = 0 THEN ''
                   WHEN a.attcollation = 100 THEN ' COLLATE default'
                   ELSE ' COLLATE "' || co.collname || '"' END AS shown
    FROM plan p
    JOIN pg_attribute a ON a.attrelid = p.rel AND a.attname = p.col AND NOT a.attisdropped
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    WHERE p.kind = 'distributed'),
-- each distributed table's colocation group, named by the table that starts it
grp(tbl, anchor, depth) AS (
    SELECT tbl, tbl, 0 FROM plan WHERE kind = 'distributed' AND colocate_with IS NULL
    UNION ALL
    SELECT p.tbl, g.anchor, g.depth + 1
    FROM plan p JOIN grp g ON p.colocate_with = g.tbl
    WHERE p.kind = 'distributed' AND g.depth < 100),
fk AS (
    SELECT k.conname, k.conkey, k.confkey, k.confupdtype, k.confdeltype,
           c.tbl AS child, c.kind AS child_kind, p.tbl AS parent, p.kind AS parent_kind,
           dc.attnum AS child_col, dp.attnum AS parent_col,
           gc.anchor AS child_group, gp.anchor AS parent_group
    FROM pg_constraint k
    JOIN plan c ON c.rel = k.conrelid
    JOIN plan p ON p.rel = k.confrelid
    LEFT JOIN dist dc ON dc.rel = k.conrelid
    LEFT JOIN dist dp ON dp.rel = k.confrelid
    LEFT JOIN grp gc ON gc.tbl = c.tbl
    LEFT JOIN grp gp ON gp.tbl = p.tbl
    WHERE k.contype = 'f'),
v(msg) AS (
    SELECT t.name || ' is not in the plan'
    FROM tables t WHERE NOT EXISTS (SELECT 1 FROM plan p WHERE p.rel = t.rel)
    UNION ALL
    SELECT p.tbl || ' is planned but does not exist' FROM plan p WHERE p.rel IS NULL
    UNION ALL
    SELECT p.tbl || ': no column ' || p.col || ' to distribute by'
    FROM plan p
    WHERE p.kind = 'distributed' AND p.rel IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM dist d WHERE d.tbl = p.tbl)
    UNION ALL
    SELECT p.tbl || ': colocated with ' || p.colocate_with || ', which is not distributed'
    FROM plan p
    WHERE p.kind = 'distributed' AND p.colocate_with IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM plan q WHERE q.tbl = p.colocate_with
                                            AND q.kind = 'distributed')
    UNION ALL
    -- primary keys, unique constraints and unique indexes
    SELECT d.tbl || ': unique key ' || ic.relname || ' lacks the distribution column ' || d.col
    FROM dist d JOIN pg_index i ON i.indrelid = d.rel JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indisunique AND NOT (d.attnum = ANY (i.indkey::int2[]))
    UNION ALL
    SELECT d.tbl || ': exclusion constraint ' || k.conname || ' on a distributed table'
    FROM dist d JOIN pg_constraint k ON k.conrelid = d.rel AND k.contype = 'x'
    UNION ALL
    SELECT f.child || ': foreign key ' || f.conname || ' to ' || f.parent
           || ' does not pair the distribution columns'
    FROM fk f
    WHERE f.child_kind = 'distributed' AND f.parent_kind = 'distributed'
      AND NOT EXISTS (SELECT 1 FROM generate_subscripts(f.conkey, 1) s
                      WHERE f.conkey[s] = f.child_col AND f.confkey[s] = f.parent_col)
    UNION ALL
    SELECT f.child || ': foreign key ' || f.conname || ' to ' || f.parent
           || ' joins two colocation groups'
    FROM fk f
    WHERE f.child_kind = 'distributed' AND f.parent_kind = 'distributed'
      AND f.child_group IS DISTINCT FROM f.parent_group
    UNION ALL
    SELECT f.child || ': foreign key ' || f.conname || ' has an ON UPDATE action'
    FROM fk f
    WHERE f.child_kind = 'distributed' AND f.confupdtype NOT IN ('a', 'r')
    UNION ALL
    SELECT f.child || ': foreign key ' || f.conname || ' sets the distribution column on delete'
    FROM fk f
    WHERE f.child_kind = 'distributed' AND f.confdeltype IN ('n', 'd')
    UNION ALL
    SELECT f.child || ': foreign key ' || f.conname || ' from a ' || f.child_kind
           || ' table to a ' || f.parent_kind || ' table'
    FROM fk f
    WHERE (f.child_kind, f.parent_kind) NOT IN (('distributed', 'distributed'),
                                                ('distributed', 'reference'),
                                                ('reference', 'reference'),
                                                ('local', 'local'))
    UNION ALL
    SELECT p.tbl || ': trigger ' || g.tgname || ' on a ' || p.kind || ' table'
    FROM plan p JOIN pg_trigger g ON g.tgrelid = p.rel
    WHERE p.kind IN ('distributed', 'reference') AND NOT g.tgisinternal
    UNION ALL
    SELECT d.tbl || ': distribution column ' || d.col || ' is ' || d.shown || ', '
           || o.tbl || '''s is ' || o.shown
    FROM dist d JOIN dist o ON o.tbl = d.colocate_with
    WHERE (d.atttypid, d.attcollation) <> (o.atttypid, o.attcollation)
    UNION ALL
    SELECT d.tbl || ': identity column ' || a.attname || ' is '
           || format_type(a.atttypid, a.atttypmod) || ', not bigint'
    FROM dist d JOIN pg_attribute a ON a.attrelid = d.rel
    WHERE a.attidentity <> '' AND a.atttypid <> 'bigint'::regtype
    UNION ALL
    -- the row type (or an array of it) as a parameter
    SELECT DISTINCT pr.oid::regprocedure::text || ' takes the row type of ' || p.tbl
    FROM pg_proc pr
    CROSS JOIN LATERAL unnest(pr.proargtypes::oid[]) arg(t)
    JOIN pg_type ty ON ty.oid = arg.t
    JOIN pg_type rt ON rt.oid = CASE WHEN ty.typelem <> 0 AND ty.typlen = -1
                                     THEN ty.typelem ELSE ty.oid END
    JOIN plan p ON p.rel = rt.typrelid
    WHERE p.kind IN ('distributed', 'reference'))
SELECT msg FROM v ORDER BY msg
