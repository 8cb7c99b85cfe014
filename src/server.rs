//! Starting the service: database resolution, migrations, HTTP serving and
//! graceful shutdown.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::{self, DbError};
use crate::feed;
use crate::localpg::{LocalCluster, LocalPgError, Storage};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    LocalPg(#[from] LocalPgError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Refused(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A connection with no traffic either way for this long is closed. Longer
/// than the WebSocket ping interval, so idle sockets that answer pings stay.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The database the process talks to, and the local cluster that serves it
/// when we manage one (kept alive for as long as this value lives).
pub struct Database {
    pub url: String,
    pub cluster: Option<LocalCluster>,
}

/// Database name used inside a self-managed cluster.
const LOCAL_DB: &str = "agentplane";

/// Uses `DATABASE_URL`, or starts the self-managed cluster and makes sure
/// its `agentplane` database exists.
pub async fn resolve_database(config: &Config) -> Result<Database, StartError> {
    if let Some(url) = &config.database_url {
        return Ok(Database {
            url: url.clone(),
            cluster: None,
        });
    }
    let dir = config.data_dir.clone();
    let storage = if config.unsafe_fast_storage {
        tracing::warn!(
            "--unsafe-fast-storage: the local PostgreSQL runs with fsync off; a crash can lose \
             answered writes or corrupt the data"
        );
        Storage::UnsafeFast
    } else {
        Storage::Durable
    };
    let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&dir, storage))
        .await
        .map_err(|e| StartError::Refused(format!("cluster start panicked: {e}")))??;
    let admin = db::connect(&cluster.url("postgres"), "agentplane-setup").await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&LOCAL_DB])
        .await
        .map_err(DbError::from)?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {LOCAL_DB}"))
            .await
            .map_err(DbError::from)?;
    }
    Ok(Database {
        url: cluster.url(LOCAL_DB),
        cluster: Some(cluster),
    })
}

/// `agentplane migrate`.
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    let database = resolve_database(config).await?;
    db::migrate::run(&database.url).await?;
    tracing::info!("database is up to date");
    Ok(())
}

/// `agentplane serve`: runs until SIGINT/SIGTERM, then finishes in-flight
/// requests, closes connections and stops the self-managed database.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let database = resolve_database(&config).await?;
    db::migrate::run(&database.url).await?;
    let pool = db::pool_with(&database.url, config.pool_size, config.notify)?;
    check_open_mode(&config, &pool).await?;
    let state = AppState::new(pool.clone(), config.clone());
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let result = run(state, &database.url, listener, shutdown_signal()).await;
    pool.close();
    drop(database); // stops the self-managed cluster, if any
    result
}

/// Serves `state` on `listener` with the feed relay, the retention pruner,
/// the usage folder and the webhook worker running, until `shutdown` resolves; then closes WebSockets (1001),
/// finishes in-flight requests and stops the background tasks. Used by
/// `serve` and by tests.
pub async fn run(
    state: AppState,
    database_url: &str,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config = state.config.clone();
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(feed::listener::run(
        state.hub.clone(),
        feed::listener::RelayConfig {
            url: database_url.to_string(),
            listen: config.notify,
            poll: config.poll_interval,
        },
        stop_rx.clone(),
    ));
    let pruner = tokio::spawn(feed::retention::run(
        state.pool.clone(),
        config.event_retention,
        stop_rx.clone(),
    ));
    let folder = tokio::spawn(db::usage_folder::run(
        state.pool.clone(),
        config.usage_fold_interval,
        stop_rx.clone(),
    ));
    let webhooks = tokio::spawn(crate::webhooks::run(
        state.pool.clone(),
        state.hub.clone(),
        crate::webhooks::WebhookConfig {
            poll: config.webhook_poll,
            lease: config.webhook_lease,
            retry_delays: config.webhook_retry_delays.clone(),
            disable_after: config.webhook_disable_after,
            timeout: config.webhook_timeout,
        },
        stop_rx.clone(),
    ));
    let access = tokio::spawn(api::access::watch(
        state.access.clone(),
        state.pool.clone(),
        config.key_recheck,
        stop_rx,
    ));
    tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "agentplane is listening");
    let acceptor = crate::connections::GuardedAcceptor::new(
        poem::listener::TcpAcceptor::from_tokio(listener).map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?,
        config.http_max_connections,
        config.http_header_timeout,
    );
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        hub.shutdown(); // WebSockets close with 1001 instead of holding the server up
    };
    let result = poem::Server::new_with_acceptor(acceptor)
        .idle_timeout(IDLE_TIMEOUT)
        .run_with_graceful_shutdown(api::app(state), shutdown, Some(Duration::from_secs(10)))
        .await;
    let _ = stop_tx.send(true);
    let _ = relay.await;
    let _ = pruner.await;
    let _ = folder.await;
    let _ = access.await;
    let _ = webhooks.await;
    result.map_err(|e| StartError::Refused(format!("server error: {e}")))
}

/// With no admin key and no key ever created, the API is open until the first
/// key is created; allowed only on loopback.
async fn check_open_mode(
    config: &Config,
    pool: &deadpool_postgres::Pool,
) -> Result<(), StartError> {
    if config.admin_key.is_some() || db::keys::any_created(pool).await? {
        return Ok(());
    }
    if !config.bind.ip().is_loopback() {
        return Err(StartError::Refused(format!(
            "no API key is configured and {} is not a loopback address: set AGENTPLANE_ADMIN_KEY \
             or create a key with `agentplane keys create --role admin`",
            config.bind
        )));
    }
    tracing::warn!(
        "NO API KEY CONFIGURED: the API is OPEN to anyone who can reach {} (loopback only) \
         until the first key is created (POST /api/v1/keys, `agentplane keys create --role admin` \
         or AGENTPLANE_ADMIN_KEY); from then on every request needs a key.",
        config.bind
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
