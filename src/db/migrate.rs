//! Schema setup: refinery migrations, then the `sql/` files, in one
//! transaction each, under an advisory lock so concurrent starts queue.

use super::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The stored logic, applied after the migrations on every start, in this
/// order (later files call functions of earlier ones: a SQL-language body is
/// checked when it is created, so what it calls must exist by then). The
/// credits, agents, usage ingest and variants domains are split into one file
/// per sub-domain.
pub const SQL_FILES: &[(&str, &str)] = &[
    ("common.sql", include_str!("../../sql/common.sql")),
    ("feed.sql", include_str!("../../sql/feed.sql")),
    ("auth.sql", include_str!("../../sql/auth.sql")),
    (
        "credits/periods.sql",
        include_str!("../../sql/credits/periods.sql"),
    ),
    (
        "credits/pricing.sql",
        include_str!("../../sql/credits/pricing.sql"),
    ),
    (
        "credits/users.sql",
        include_str!("../../sql/credits/users.sql"),
    ),
    (
        "credits/ledger.sql",
        include_str!("../../sql/credits/ledger.sql"),
    ),
    (
        "credits/spend.sql",
        include_str!("../../sql/credits/spend.sql"),
    ),
    (
        "credits/movements.sql",
        include_str!("../../sql/credits/movements.sql"),
    ),
    (
        "credits/holds.sql",
        include_str!("../../sql/credits/holds.sql"),
    ),
    ("usage.sql", include_str!("../../sql/usage.sql")),
    (
        "usage_ingest/cost.sql",
        include_str!("../../sql/usage_ingest/cost.sql"),
    ),
    (
        "usage_ingest/checks.sql",
        include_str!("../../sql/usage_ingest/checks.sql"),
    ),
    (
        "usage_ingest/write.sql",
        include_str!("../../sql/usage_ingest/write.sql"),
    ),
    (
        "usage_ingest/fold.sql",
        include_str!("../../sql/usage_ingest/fold.sql"),
    ),
    (
        "usage_ingest/record.sql",
        include_str!("../../sql/usage_ingest/record.sql"),
    ),
    (
        "usage_ingest/reprice.sql",
        include_str!("../../sql/usage_ingest/reprice.sql"),
    ),
    ("usage_reads.sql", include_str!("../../sql/usage_reads.sql")),
    (
        "agents/shapes.sql",
        include_str!("../../sql/agents/shapes.sql"),
    ),
    (
        "agents/organism.sql",
        include_str!("../../sql/agents/organism.sql"),
    ),
    (
        "agents/registry.sql",
        include_str!("../../sql/agents/registry.sql"),
    ),
    (
        "agents/messages.sql",
        include_str!("../../sql/agents/messages.sql"),
    ),
    (
        "agents/threads.sql",
        include_str!("../../sql/agents/threads.sql"),
    ),
    (
        "variants/crud.sql",
        include_str!("../../sql/variants/crud.sql"),
    ),
    (
        "variants/activation.sql",
        include_str!("../../sql/variants/activation.sql"),
    ),
    (
        "variants/metrics.sql",
        include_str!("../../sql/variants/metrics.sql"),
    ),
    ("executions.sql", include_str!("../../sql/executions.sql")),
    ("reporting.sql", include_str!("../../sql/reporting.sql")),
    (
        "webhooks/endpoints.sql",
        include_str!("../../sql/webhooks/endpoints.sql"),
    ),
    (
        "webhooks/claim.sql",
        include_str!("../../sql/webhooks/claim.sql"),
    ),
    (
        "webhooks/events.sql",
        include_str!("../../sql/webhooks/events.sql"),
    ),
    (
        "webhooks/record.sql",
        include_str!("../../sql/webhooks/record.sql"),
    ),
    (
        "webhooks/deliveries.sql",
        include_str!("../../sql/webhooks/deliveries.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key that serialises schema setup.
const SETUP_LOCK: i64 = 0x6167_656e_7470_6c61; // "agentpla"

/// Brings the database at `url` up to date. Safe to run any number of times,
/// from any number of processes at once.
pub async fn run(url: &str) -> Result<(), DbError> {
    let mut client = super::connect(url, "agentplane-migrate").await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&SETUP_LOCK])
        .await?;
    let result = apply(&mut client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&SETUP_LOCK])
        .await;
    result?;
    unlock?;
    Ok(())
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<(), DbError> {
    // Notices such as "schema already exists" are noise here.
    client
        .batch_execute("SET client_min_messages = warning")
        .await?;
    let report = embedded::migrations::runner()
        .set_grouped(true)
        .run_async(client)
        .await
        .map_err(|e| DbError::Migration(e.to_string()))?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    let tx = client.transaction().await?;
    for (name, text) in SQL_FILES {
        tx.batch_execute(text)
            .await
            .map_err(|e| DbError::Migration(format!("sql/{name}: {}", describe(&e))))?;
    }
    tx.commit().await?;
    Ok(())
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.where_().map(|w| format!(" at {w}")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}
