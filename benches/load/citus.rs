//! The benchmark on a Citus cluster: with BENCH_CITUS_WORKERS (the workers'
//! `host:port`, comma-separated; DATABASE_URL is the coordinator), the bench
//! database gets the citus extension on every node and the workers, is
//! migrated, and is distributed by the plan before any figure runs, as
//! docs/operations.md tells operators to do.

use crate::harness::{with_db, BenchDb};

/// The workers BENCH_CITUS_WORKERS names, if any.
pub fn workers() -> Option<Vec<String>> {
    let list = std::env::var("BENCH_CITUS_WORKERS").ok()?;
    let workers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    (!workers.is_empty()).then_some(workers)
}

fn host_port(addr: &str) -> (String, i32) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_string(), port.parse().expect("a port number"))
}

/// The coordinator's host and port, as DATABASE_URL gives them.
fn coordinator(url: &str) -> (String, i32) {
    let cfg: tokio_postgres::Config = url.parse().expect("DATABASE_URL");
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => panic!("BENCH_CITUS_WORKERS needs a TCP host in DATABASE_URL"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    (host, i32::from(port))
}

/// Makes `db` a distributed agentplane database on its server (the
/// coordinator) and `workers`.
pub async fn prepare(db: &BenchDb, workers: &[String]) {
    for w in workers {
        let url = with_db(&format!("postgres://postgres@{w}/postgres"), &db.name);
        let c = agentplane::db::connect(&url, "bench")
            .await
            .expect("connect to a worker");
        c.batch_execute("CREATE EXTENSION IF NOT EXISTS citus")
            .await
            .expect("citus on a worker");
    }
    let c = db.client().await;
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS citus")
        .await
        .expect("citus on the coordinator");
    let (host, port) = coordinator(&db.url);
    c.execute("SELECT citus_set_coordinator_host($1, $2)", &[&host, &port])
        .await
        .expect("coordinator host");
    for w in workers {
        let (host, port) = host_port(w);
        c.execute("SELECT citus_add_node($1, $2)", &[&host, &port])
            .await
            .expect("add a worker");
    }
    agentplane::db::migrate::run(&db.url)
        .await
        .expect("migrate");
    c.batch_execute(include_str!("../../sql/citus/distribute.sql"))
        .await
        .expect("apply the distribution plan");
    c.batch_execute(include_str!("../../sql/citus/reporting_grants.sql"))
        .await
        .expect("grant the reporting role its shards");
}
