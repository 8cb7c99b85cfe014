//! PostgreSQL's own error texts (constraint names, echoed input) never reach
//! clients: data and constraint errors get a sentence of ours.

use crate::support::TestDb;
use agentplane::db::DbError;

async fn mapped(db: &TestDb, sql: &str) -> agentplane::db::error::MappedError {
    let client = db.client().await;
    let err = client.batch_execute(sql).await.expect_err("must fail");
    DbError::from(err).mapped()
}

#[tokio::test]
async fn data_and_constraint_errors_do_not_echo_the_database() {
    let db = TestDb::new().await;
    let cases = [
        ("SELECT 'secret-input-1'::uuid", 400, "secret-input-1"),
        ("SELECT 'secret-input-2'::int", 400, "secret-input-2"),
        (
            "CREATE TABLE t (x text CONSTRAINT secret_constraint UNIQUE); \
             INSERT INTO t VALUES ('secret-value'), ('secret-value')",
            409,
            "secret",
        ),
        (
            "CREATE TABLE c (x int CONSTRAINT secret_check CHECK (x > 0)); INSERT INTO c VALUES (-1)",
            400,
            "secret",
        ),
    ];
    for (sql, status, secret) in cases {
        let m = mapped(&db, sql).await;
        assert_eq!(m.status, status, "{sql}: {m:?}");
        assert!(!m.message.contains(secret), "{sql}: {m:?}");
        assert_eq!(m.details, serde_json::json!({}));
    }
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_a_503() {
    let db = TestDb::new().await;
    let m = mapped(&db, "SET statement_timeout = '50ms'; SELECT pg_sleep(5)").await;
    assert_eq!((m.status, m.code.as_str()), (503, "statement_timeout"));
}

#[tokio::test]
async fn pooled_sessions_carry_a_statement_timeout() {
    let db = TestDb::new().await;
    let pool = agentplane::db::pool(&db.url, 2).unwrap();
    let client = pool.get().await.unwrap();
    let timeout: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "1min");
}
