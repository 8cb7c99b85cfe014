//! Database access: the pool, migrations, and one thin module per domain that
//! calls that domain's SQL functions.

pub mod agents;
pub mod credits;
pub mod error;
pub mod executions;
pub mod feed;
pub mod keys;
pub mod migrate;
pub mod model_prices;
pub mod organism;
pub mod schema;
pub mod spend_queue;
pub mod tls;
pub mod usage;
pub mod usage_columns;
pub mod usage_folder;
pub mod variants;
pub mod webhooks;

pub use error::DbError;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;

/// Parses a URL and pins the session settings every agentplane connection uses.
pub fn pg_config(url: &str, application_name: &str) -> Result<tokio_postgres::Config, DbError> {
    pg_config_with(url, application_name, true)
}

/// Like [`pg_config`], and with `notify` false the session also runs with
/// `agentplane.notify=off` (feed.emit then sends no NOTIFY; the relay polls).
/// The one place the session options are written.
pub fn pg_config_with(
    url: &str,
    application_name: &str,
    notify: bool,
) -> Result<tokio_postgres::Config, DbError> {
    let mut cfg = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::Config(format!("invalid DATABASE_URL: {e}")))?;
    tls::apply_sslmode_default(url, &mut cfg);
    cfg.application_name(application_name);
    let mut options = String::from("-c TimeZone=UTC");
    if !notify {
        options.push_str(" -c agentplane.notify=off");
    }
    cfg.options(&options);
    Ok(cfg)
}

/// A connection pool for request handlers. `Fast` recycling: our handlers
/// never leave session state behind (no LISTEN on pooled connections).
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    pool_with(url, size, true)
}

/// No statement of a request runs longer than this; a stuck one is
/// cancelled by the server instead of holding a pooled connection forever.
pub const STATEMENT_TIMEOUT: &str = "60s";

/// [`pool`] whose sessions send NOTIFY from feed.emit only when `notify`.
pub fn pool_with(url: &str, size: usize, notify: bool) -> Result<Pool, DbError> {
    let mut cfg = pg_config_with(url, "agentplane", notify)?;
    let options = format!(
        "{} -c statement_timeout={STATEMENT_TIMEOUT}",
        cfg.get_options().unwrap_or_default()
    );
    cfg.options(&options);
    let mgr = Manager::from_config(
        cfg,
        tls::connector()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// `url` with its database name replaced by `database` (a query string, if
/// any, is kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("//").map(|j| j + 1).unwrap_or(0) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// One standalone connection (migrations, the feed listener, tests), with its
/// driver task spawned.
pub async fn connect(url: &str, application_name: &str) -> Result<tokio_postgres::Client, DbError> {
    let cfg = pg_config(url, application_name)?;
    let (client, conn) = cfg.connect(tls::connector()?).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// Runs `sql` (a cached prepared statement: one round trip per call) and
/// returns its one jsonb column. The shape most domain functions answer in.
pub(crate) async fn call_json(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<serde_json::Value, DbError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.query_one(&stmt, params).await?.try_get(0)?)
}
