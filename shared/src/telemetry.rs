//! Logging: one JSON line per request, never a key, token or signing key.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Installs the JSON subscriber for a function; `RUST_LOG` filters (default `info`).
///
/// `RUST_LOG` takes levels and `target=level` pairs (`warn`,
/// `info,auth_shared=debug`). That is `Targets`, not `EnvFilter`: its span
/// and field filters would link a regex engine into every `bootstrap`, about
/// a megabyte the service has no use for.
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
        .with_writer(writer)
        .finish()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
}

/// The filter `RUST_LOG` asks for; `info` when it is unset or unreadable.
fn filter(spec: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match spec.map(str::trim) {
        None | Some("") => info(),
        Some(spec) => spec.parse().unwrap_or_else(|_| info()),
    }
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

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn rust_log_sets_levels_per_target_and_defaults_to_info() {
        let default = filter(None);
        assert!(default.would_enable("auth_shared", &Level::INFO));
        assert!(!default.would_enable("auth_shared", &Level::DEBUG));

        let quiet = filter(Some("warn"));
        assert!(!quiet.would_enable("auth_shared", &Level::INFO));
        assert!(quiet.would_enable("auth_shared", &Level::WARN));

        let mixed = filter(Some("info,auth_shared::store=debug"));
        assert!(mixed.would_enable("auth_shared::store::sqlite", &Level::DEBUG));
        assert!(!mixed.would_enable("aws_smithy_runtime", &Level::DEBUG));
    }

    #[test]
    fn an_unreadable_rust_log_falls_back_to_info() {
        let fallback = filter(Some("info,=[bad"));
        assert!(fallback.would_enable("auth_shared", &Level::INFO));
        assert!(!fallback.would_enable("auth_shared", &Level::DEBUG));
    }
}
