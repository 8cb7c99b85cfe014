//! Making a new database a distributed agentplane database on a Citus
//! cluster, as docs/operations.md tells operators to: the citus extension on
//! every node, the workers added, migrated, then the distribution plan and
//! the reporting role's grants applied. Shared by the tests (a test database
//! in Citus mode) and the benchmark (BENCH_CITUS_WORKERS), which both
//! include this file.

/// The nodes a comma-separated `host:port` list names (blanks skipped).
pub fn nodes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// `host:port` as the host and the port number.
pub fn host_port(node: &str) -> (String, i32) {
    let (host, port) = node.rsplit_once(':').expect("host:port");
    (host.to_string(), port.parse().expect("a port number"))
}

/// Distributes `db_name`, a database just created on the coordinator
/// (`host:port`; Citus creates it on the workers too), over `workers`.
pub async fn distribute(coordinator: &str, workers: &[String], db_name: &str) {
    let url = |node: &str| format!("postgres://postgres@{node}/{db_name}");
    for w in workers {
        let worker = agentplane::db::connect(&url(w), "agentplane-citus-setup")
            .await
            .expect("connect to a worker");
        worker
            .batch_execute("CREATE EXTENSION IF NOT EXISTS citus")
            .await
            .expect("citus on a worker");
    }
    let c = agentplane::db::connect(&url(coordinator), "agentplane-citus-setup")
        .await
        .expect("connect to the coordinator");
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS citus")
        .await
        .expect("citus on the coordinator");
    let (host, port) = host_port(coordinator);
    c.execute("SELECT citus_set_coordinator_host($1, $2)", &[&host, &port])
        .await
        .expect("coordinator host");
    for w in workers {
        let (host, port) = host_port(w);
        c.execute("SELECT citus_add_node($1, $2)", &[&host, &port])
            .await
            .expect("add a worker");
    }
    agentplane::db::migrate::run(&url(coordinator))
        .await
        .expect("migrate");
    c.batch_execute(include_str!("../../../sql/citus/distribute.sql"))
        .await
        .expect("apply the distribution plan");
    c.batch_execute(include_str!("../../../sql/citus/reporting_grants.sql"))
        .await
        .expect("grant the reporting role its shards");
}
