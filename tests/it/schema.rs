//! docs/schema.sql is the schema the migrations give a new database, so the
//! tables, constraints and indexes can be read in one place.

use crate::support::TestDb;

#[tokio::test]
async fn committed_schema_matches_the_migrations() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.sql"))
            .expect("docs/schema.sql is missing: run `cargo run -- schema --write`");
    // Every test database is a copy of one freshly migrated template.
    let db = TestDb::new().await;
    let described = agentplane::db::schema::describe(&db.client().await)
        .await
        .expect("describe");
    let first_difference = committed
        .lines()
        .zip(described.lines())
        .position(|(a, b)| a != b)
        .map(|i| format!("first difference at line {}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".into());
    assert!(
        committed == described,
        "docs/schema.sql is stale ({first_difference}): run `cargo run -- schema --write` \
         and commit it"
    );
}
