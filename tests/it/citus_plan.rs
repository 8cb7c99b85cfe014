//! The Citus distribution plan (sql/citus/distribute.sql) against the schema
//! the migrations give. Citus refuses to distribute a table that breaks one of
//! its rules, and only says so on a cluster; this test says so on plain
//! PostgreSQL, so a migration that breaks a rule fails here first.

use crate::support::TestDb;

const PLAN: &str = include_str!("../../sql/citus/distribute.sql");

/// One table's placement in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub table: String,
    /// distributed, reference or local
    pub kind: &'static str,
    pub column: Option<String>,
    /// The table whose colocation group this one joins; None starts a group.
    pub colocate_with: Option<String>,
}

/// The quoted arguments of the first `name(...)` call on a line.
fn call_args(line: &str, name: &str) -> Option<Vec<String>> {
    let start = line.find(&format!("{name}("))? + name.len() + 1;
    let rest = &line[start..];
    let end = rest.find(')')?;
    Some(
        rest[..end]
            .split('\'')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect(),
    )
}

/// Reads the placements of a plan file: its create_distributed_table and
/// create_reference_table calls and its `-- local: table` markers.
pub fn parse_plan(plan: &str) -> Vec<Placement> {
    let mut out = Vec::new();
    for line in plan.lines().map(str::trim) {
        if let Some(table) = line.strip_prefix("-- local:") {
            out.push(Placement {
                table: table.trim().to_string(),
                kind: "local",
                column: None,
                colocate_with: None,
            });
        } else if line.starts_with("--") {
            continue;
        } else if let Some(args) = call_args(line, "create_distributed_table") {
            assert!(
                args.len() == 3,
                "every create_distributed_table names its table, column and colocate_with: {line}"
            );
            out.push(Placement {
                table: args[0].clone(),
                kind: "distributed",
                column: Some(args[1].clone()),
                colocate_with: (args[2] != "none").then(|| args[2].clone()),
            });
        } else if let Some(args) = call_args(line, "create_reference_table") {
            out.push(Placement {
                table: args[0].clone(),
                kind: "reference",
                column: None,
                colocate_with: None,
            });
        }
    }
    out
}

/// The rules Citus enforces when it distributes the planned tables, checked
/// in the catalog of `client`'s database; returns one line per violation.
pub async fn violations(client: &tokio_postgres::Client, plan: &[Placement]) -> Vec<String> {
    client
        .batch_execute(
            "CREATE TEMP TABLE citus_plan (tbl text PRIMARY KEY, kind text NOT NULL,
                                           col text, colocate_with text)",
        )
        .await
        .expect("plan table");
    for p in plan {
        client
            .execute(
                "INSERT INTO citus_plan VALUES ($1, $2, $3, $4)",
                &[&p.table, &p.kind, &p.column, &p.colocate_with],
            )
            .await
            .unwrap_or_else(|e| panic!("{} is planned twice or badly: {e}", p.table));
    }
    let rows = client
        .query(include_str!("citus_rules.sql"), &[])
        .await
        .expect("check the rules");
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test]
async fn every_table_follows_the_citus_rules_of_its_placement() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let plan = parse_plan(PLAN);
    assert!(plan.len() >= 20, "the plan's calls were read: {plan:?}");
    let found = violations(&client, &plan).await;
    assert!(
        found.is_empty(),
        "the schema breaks the Citus distribution plan (sql/citus/distribute.sql):\n{}",
        found.join("\n")
    );
}

/// The check itself catches each kind of violation: a table made for the
/// purpose breaks one rule at a time.
#[tokio::test]
async fn the_rule_check_catches_each_kind_of_violation() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA trial;
             CREATE TABLE trial.owner (k text PRIMARY KEY, other text COLLATE \"C\");
             CREATE TABLE trial.child (k text COLLATE \"C\", id bigint GENERATED ALWAYS AS IDENTITY,
                                       PRIMARY KEY (id),
                                       FOREIGN KEY (k) REFERENCES trial.owner (k) ON UPDATE CASCADE);
             CREATE TABLE trial.unplanned (x int);
             CREATE FUNCTION trial.f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
             CREATE TRIGGER t AFTER INSERT ON trial.owner FOR EACH ROW EXECUTE FUNCTION trial.f();
             CREATE FUNCTION trial.json(o trial.owner) RETURNS text LANGUAGE sql AS $$SELECT o.k$$;
             CREATE TABLE trial.small (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k text);",
        )
        .await
        .expect("trial schema");
    let mut plan = parse_plan(PLAN);
    plan.extend(parse_plan(
        "SELECT create_distributed_table('trial.owner', 'k', colocate_with => 'none');
         SELECT create_distributed_table('trial.child', 'k', colocate_with => 'trial.owner');
         SELECT create_distributed_table('trial.small', 'k', colocate_with => 'trial.owner');
         SELECT create_reference_table('no.such_table');",
    ));
    let found = violations(&client, &plan).await.join("\n");
    for expected in [
        "trial.unplanned is not in the plan",
        "no.such_table is planned but does not exist",
        "trial.child: unique key child_pkey lacks the distribution column k",
        "trial.child: foreign key child_k_fkey has an ON UPDATE action",
        "trial.owner: trigger t on a distributed table",
        "trial.child: distribution column k is text COLLATE \"C\", trial.owner's is text COLLATE default",
        "trial.json(trial.owner) takes the row type of trial.owner",
        "trial.small: identity column id is integer, not bigint",
    ] {
        assert!(found.contains(expected), "missing «{expected}» in:\n{found}");
    }
}
