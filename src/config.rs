//! Configuration from the environment (README "Configuration",
//! docs/operations.md).

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the server needs to know at start, read once. Its `Debug`
/// hides the admin key and the database password (see below).
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`; `None` means "run a self-managed local cluster".
    pub database_url: Option<String>,
    /// `AGENTPLANE_BIND`, default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `AGENTPLANE_ADMIN_KEY`: a bootstrap admin secret, checked in-process.
    pub admin_key: Option<String>,
    /// `AGENTPLANE_ORGANISM`, default `agentplane`.
    pub organism: String,
    /// `AGENTPLANE_MAX_BODY_BYTES`, default 1 MiB.
    pub max_body_bytes: usize,
    /// `AGENTPLANE_EVENT_RETENTION`, default `7d`.
    pub event_retention: Duration,
    /// `AGENTPLANE_DATA_DIR`: where the self-managed cluster lives, default `.agentplane`.
    pub data_dir: std::path::PathBuf,
    /// `AGENTPLANE_POOL_SIZE`, default 16.
    pub pool_size: usize,
    /// `AGENTPLANE_NOTIFY` (`on`/`off`, default on): NOTIFY as a wake-up hint.
    pub notify: bool,
    /// `AGENTPLANE_POLL_MS`, default 10: the feed relay's poll tick.
    pub poll_interval: Duration,
    /// `AGENTPLANE_USAGE_FOLD_MS`, default 200: how often the usage folder
    /// looks for batches to fold into the thread budgets and rollups. It
    /// folds when due (`db::usage_folder::due_every`): at the latest once
    /// the oldest has waited five of these, so a batch's budget thresholds
    /// fire within about six (reads are exact either way).
    pub usage_fold_interval: Duration,
    /// `AGENTPLANE_WS_MAX_CONNECTIONS`, default 10000: WebSockets per server.
    pub ws_max_connections: usize,
    /// `AGENTPLANE_WS_QUEUE`, default 1024: events queued per WebSocket
    /// before a client that does not keep up is closed with 1013.
    pub ws_queue: usize,
    /// `AGENTPLANE_WS_MAX_COMMAND_BYTES`, default 65536: largest client message.
    pub ws_max_command_bytes: usize,
    /// `AGENTPLANE_WS_IDLE_TIMEOUT`, default `60s`: a socket silent this long
    /// (not even answering the server's pings) is closed.
    pub ws_idle_timeout: Duration,
    /// `AGENTPLANE_KEY_RECHECK`, default `5s`: how often the server re-reads
    /// revoked keys for its open WebSockets (requests check on every call).
    pub key_recheck: Duration,
    /// `serve --unsafe-fast-storage`: the self-managed cluster runs without
    /// crash safety (fsync off). Never the default.
    pub unsafe_fast_storage: bool,
    /// `AGENTPLANE_HTTP_MAX_CONNECTIONS`, default 16384: open HTTP
    /// connections (WebSockets included); more wait in the accept backlog.
    pub http_max_connections: usize,
    /// `AGENTPLANE_HTTP_HEADER_TIMEOUT`, default `10s`: a new connection
    /// must have sent its first request's headers by then.
    pub http_header_timeout: Duration,
    /// `AGENTPLANE_WEBHOOK_RETRY_DELAYS`, default `5s,30s,2m,10m,1h,2h`:
    /// the waits before each retry of a failed webhook delivery; the last
    /// one repeats.
    pub webhook_retry_delays: Vec<Duration>,
    /// `AGENTPLANE_WEBHOOK_DISABLE_AFTER`, default `24h`: a webhook endpoint
    /// failing for this long is disabled.
    pub webhook_disable_after: Duration,
    /// The webhook worker's safety tick (250 ms): due retries and new or
    /// enabled endpoints are picked up at least this often.
    pub webhook_poll: Duration,
    /// How long a server's lease on a webhook endpoint lasts unrenewed (30 s):
    /// after a crash, another server continues once it ends.
    pub webhook_lease: Duration,
    /// One webhook POST's time limit (10 s).
    pub webhook_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("bind", &self.bind)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<hidden>"))
            .field("organism", &self.organism)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("event_retention", &self.event_retention)
            .field("data_dir", &self.data_dir)
            .field("pool_size", &self.pool_size)
            .field("notify", &self.notify)
            .field("poll_interval", &self.poll_interval)
            .field("usage_fold_interval", &self.usage_fold_interval)
            .field("ws_max_connections", &self.ws_max_connections)
            .field("ws_queue", &self.ws_queue)
            .field("ws_max_command_bytes", &self.ws_max_command_bytes)
            .field("ws_idle_timeout", &self.ws_idle_timeout)
            .field("key_recheck", &self.key_recheck)
            .field("unsafe_fast_storage", &self.unsafe_fast_storage)
            .field("http_max_connections", &self.http_max_connections)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("webhook_retry_delays", &self.webhook_retry_delays)
            .field("webhook_disable_after", &self.webhook_disable_after)
            .field("webhook_poll", &self.webhook_poll)
            .field("webhook_lease", &self.webhook_lease)
            .field("webhook_timeout", &self.webhook_timeout)
            .finish()
    }
}

/// A database URL with any password replaced: `scheme://user:pass@host`
/// and `password=` parameters.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "<hidden>");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(i) = lower.find("password=") {
        let start = i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "<hidden>");
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup` (testable without touching the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let bind = match get("AGENTPLANE_BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => parse_bind(&v).ok_or_else(|| ConfigError {
                var: "AGENTPLANE_BIND",
                reason: format!("`{v}` is not HOST:PORT or PORT"),
            })?,
        };
        let max_body_bytes = match get("AGENTPLANE_MAX_BODY_BYTES") {
            None => 1024 * 1024,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError {
                    var: "AGENTPLANE_MAX_BODY_BYTES",
                    reason: format!("`{v}` is not a positive integer"),
                })?,
        };
        let event_retention = match get("AGENTPLANE_EVENT_RETENTION") {
            None => Duration::from_secs(7 * 86_400),
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError {
                var: "AGENTPLANE_EVENT_RETENTION",
                reason: format!("`{v}` is not a duration like 90s, 30m, 12h or 7d"),
            })?,
        };
        let pool_size = match get("AGENTPLANE_POOL_SIZE") {
            None => 16,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| ConfigError {
                    var: "AGENTPLANE_POOL_SIZE",
                    reason: format!("`{v}` is not an integer in 1..=1000"),
                })?,
        };
        let notify = match get("AGENTPLANE_NOTIFY").as_deref().map(str::trim) {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(v) => {
                return Err(ConfigError {
                    var: "AGENTPLANE_NOTIFY",
                    reason: format!("`{v}` is not on or off"),
                })
            }
        };
        let positive = |var: &'static str, default: usize, max: usize| match get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ConfigError {
                    var,
                    reason: format!("`{v}` is not an integer in 1..={max}"),
                }),
        };
        let poll_interval =
            Duration::from_millis(positive("AGENTPLANE_POLL_MS", 10, 60_000)? as u64);
        let usage_fold_interval =
            Duration::from_millis(positive("AGENTPLANE_USAGE_FOLD_MS", 200, 60_000)? as u64);
        let ws_max_connections = positive("AGENTPLANE_WS_MAX_CONNECTIONS", 10_000, 1_000_000)?;
        let ws_queue = positive("AGENTPLANE_WS_QUEUE", 1024, 1_000_000)?;
        let ws_max_command_bytes = positive(
            "AGENTPLANE_WS_MAX_COMMAND_BYTES",
            64 * 1024,
            64 * 1024 * 1024,
        )?;
        let ws_idle_timeout = match get("AGENTPLANE_WS_IDLE_TIMEOUT") {
            None => Duration::from_secs(60),
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError {
                var: "AGENTPLANE_WS_IDLE_TIMEOUT",
                reason: format!("`{v}` is not a duration like 90s, 30m, 12h or 7d"),
            })?,
        };
        let key_recheck = match get("AGENTPLANE_KEY_RECHECK") {
            None => Duration::from_secs(5),
            Some(v) => parse_duration(&v)
                .filter(|d| *d <= Duration::from_secs(30))
                .ok_or_else(|| ConfigError {
                    var: "AGENTPLANE_KEY_RECHECK",
                    reason: format!("`{v}` is not a duration of at most 30s, like 5s"),
                })?,
        };
        let http_max_connections = positive("AGENTPLANE_HTTP_MAX_CONNECTIONS", 16_384, 1_000_000)?;
        let http_header_timeout = match get("AGENTPLANE_HTTP_HEADER_TIMEOUT") {
            None => Duration::from_secs(10),
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError {
                var: "AGENTPLANE_HTTP_HEADER_TIMEOUT",
                reason: format!("`{v}` is not a duration like 10s"),
            })?,
        };
        let webhook_retry_delays = match get("AGENTPLANE_WEBHOOK_RETRY_DELAYS") {
            None => ["5s", "30s", "2m", "10m", "1h", "2h"]
                .iter()
                .filter_map(|d| parse_duration(d))
                .collect(),
            Some(v) => v
                .split(',')
                .map(parse_duration)
                .collect::<Option<Vec<_>>>()
                .filter(|d| !d.is_empty() && d.len() <= 100)
                .ok_or_else(|| ConfigError {
                    var: "AGENTPLANE_WEBHOOK_RETRY_DELAYS",
                    reason: format!(
                        "`{v}` is not a comma-separated list of durations like 5s,30s,2m"
                    ),
                })?,
        };
        let webhook_disable_after = match get("AGENTPLANE_WEBHOOK_DISABLE_AFTER") {
            None => Duration::from_secs(86_400),
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError {
                var: "AGENTPLANE_WEBHOOK_DISABLE_AFTER",
                reason: format!("`{v}` is not a duration like 90s, 30m, 12h or 7d"),
            })?,
        };
        let organism = get("AGENTPLANE_ORGANISM").unwrap_or_else(|| "agentplane".into());
        Ok(Config {
            database_url: get("DATABASE_URL"),
            bind,
            admin_key: get("AGENTPLANE_ADMIN_KEY"),
            organism,
            max_body_bytes,
            event_retention,
            data_dir: get("AGENTPLANE_DATA_DIR")
                .map(Into::into)
                .unwrap_or_else(|| ".agentplane".into()),
            pool_size,
            notify,
            poll_interval,
            usage_fold_interval,
            ws_max_connections,
            ws_queue,
            ws_max_command_bytes,
            ws_idle_timeout,
            key_recheck,
            unsafe_fast_storage: false,
            http_max_connections,
            http_header_timeout,
            webhook_retry_delays,
            webhook_disable_after,
            webhook_poll: Duration::from_millis(250),
            webhook_lease: Duration::from_secs(30),
            webhook_timeout: Duration::from_secs(10),
        })
    }
}

/// `HOST:PORT`, `:PORT` or a bare `PORT` (on 127.0.0.1).
fn parse_bind(v: &str) -> Option<SocketAddr> {
    let v = v.trim();
    if let Ok(port) = v.trim_start_matches(':').parse::<u16>() {
        return Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Some(addr);
    }
    use std::net::ToSocketAddrs;
    v.to_socket_addrs().ok()?.next()
}

/// `90s`, `30m`, `12h`, `7d`, or a bare number of seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let config = Config::from_lookup(|k| match k {
            "DATABASE_URL" => {
                Some("postgres://app:s3cret-pw@db.example/ap?password=s3cret-pw".into())
            }
            "AGENTPLANE_ADMIN_KEY" => Some("s3cret-admin".into()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app:<hidden>@db.example/ap"),
            "{shown}"
        );
    }

    #[test]
    fn redaction_keeps_urls_without_passwords() {
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("host=/tmp password=x user=u"),
            "host=/tmp password=<hidden> user=u"
        );
        assert_eq!(
            redact_url("postgres://u:p@h:5/d?x=1"),
            "postgres://u:<hidden>@h:5/d?x=1"
        );
    }
}
