//! The benchmark on a Citus cluster: with BENCH_CITUS_WORKERS (the workers'
//! `host:port`, comma-separated; DATABASE_URL is the coordinator), the bench
//! database is distributed before any figure runs, as the tests' databases
//! are in Citus mode.

use crate::harness::BenchDb;

#[path = "../../tests/it/support/citus_cluster.rs"]
mod citus_cluster;

/// The workers BENCH_CITUS_WORKERS names, if any.
pub fn workers() -> Option<Vec<String>> {
    let workers = citus_cluster::nodes(&std::env::var("BENCH_CITUS_WORKERS").ok()?);
    (!workers.is_empty()).then_some(workers)
}

/// The coordinator's `host:port`, as DATABASE_URL gives it.
fn coordinator(url: &str) -> String {
    let cfg: tokio_postgres::Config = url.parse().expect("DATABASE_URL");
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => panic!("BENCH_CITUS_WORKERS needs a TCP host in DATABASE_URL"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// Distributes `db`, on its server (the coordinator), over `workers`.
pub async fn prepare(db: &BenchDb, workers: &[String]) {
    citus_cluster::distribute(&coordinator(&db.url), workers, &db.name).await;
}
