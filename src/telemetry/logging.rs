//! The log: human-readable lines, or JSON lines (one object per line, for
//! log shippers) when `AGENTPLANE_LOG_FORMAT=json`. `RUST_LOG` filters.

use tracing_subscriber::fmt::MakeWriter;

/// The default filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,tokio_postgres=warn,refinery_core=warn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `AGENTPLANE_LOG_FORMAT`: `text` (default) or `json`.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(str::trim).unwrap_or_default() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "AGENTPLANE_LOG_FORMAT must be `text` or `json`, not `{other}`"
            )),
        }
    }
}

/// A subscriber writing to `writer` in `format`, filtered by `filter`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
    }
}

/// Installs the process's logger from the environment (stderr). A bad
/// `AGENTPLANE_LOG_FORMAT` is reported and the text format used.
pub fn init_from_env() {
    let format = LogFormat::parse(std::env::var("AGENTPLANE_LOG_FORMAT").ok().as_deref());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let chosen = *format.as_ref().unwrap_or(&LogFormat::Text);
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = subscriber(chosen, filter, std::io::stderr).try_init();
    if let Err(e) = format {
        tracing::warn!("{e}; logging as text");
    }
}
