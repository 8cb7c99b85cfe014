//! `sslmode=require` in `DATABASE_URL` gives an encrypted connection, for
//! the pool and for the standalone connections (feed relay, migrations);
//! a URL without `sslmode` connects in plain text as before.

use crate::support::TestDb;

async fn uses_tls(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sslmode_require_encrypts_and_plain_urls_do_not() {
    let db = TestDb::new().await;
    // TLS exists over TCP only, and only where the server has it on (the
    // self-managed cluster listens on a Unix socket): run against such a
    // DATABASE_URL, as CI does.
    let plain = db.client().await;
    let tcp = !db.url.contains("host=/");
    let server_ssl: String = plain.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if !tcp || server_ssl != "on" {
        eprintln!("skipped: the test database is not reached over TCP with ssl on");
        return;
    }
    assert!(!uses_tls(&plain).await, "a URL without sslmode stays plain");
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=require", db.url);
    let standalone = agentplane::db::connect(&url, "tls-test").await.unwrap();
    assert!(uses_tls(&standalone).await);
    let pool = agentplane::db::pool(&url, 2).unwrap();
    assert!(uses_tls(&pool.get().await.unwrap()).await);
}
