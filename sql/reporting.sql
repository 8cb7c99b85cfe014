-- The reporting schema: stable views for analysts (documented in README.md).
-- Views are dropped and recreated on every start so a column change never
-- blocks startup; grants are re-applied at the end of this file.
-- Each domain adds its views in its own section below.

-- (domain sections)

-- Grants: the read-only role reads the reporting views and nothing else.
GRANT USAGE ON SCHEMA reporting TO agentplane_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO agentplane_reporting;
