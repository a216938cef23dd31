//! Logging: one JSON line per request, never a key, token or signing key.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the JSON subscriber for a function; `RUST_LOG` filters (default `info`).
pub fn init() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout)).ok();
}

/// The subscriber every binary uses, writing to `writer`; tests capture logs with it.
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .finish()
}

/// What a request's log line says about whom it concerned, filled in by the
/// logic as it learns it. Ids only: they are public.
#[derive(Debug, Default, Clone)]
pub struct Audit {
    /// The API key id (`sub`).
    pub key_id: Option<String>,
    /// The session id (`sid`).
    pub session_id: Option<String>,
}
