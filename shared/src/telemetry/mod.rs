//! Logging: one JSON line per request, never a key, token or signing key.

pub mod format;
pub mod metrics;

use std::io::Write;
use std::panic::Location;

use tracing::subscriber::NoSubscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Installs the JSON subscriber for a function; `RUST_LOG` filters (default `info`).
///
/// `RUST_LOG` takes levels and `target=level` pairs (`warn`,
/// `info,auth_shared=debug`). That is `Targets`, not `EnvFilter`: its span
/// and field filters would link a regex engine into every `bootstrap`, about
/// a megabyte the service has no use for.
///
/// Request lines carry EMF metrics in the namespace `METRICS_NAMESPACE`
/// names (default [`metrics::DEFAULT_NAMESPACE`]; empty: none). A name
/// CloudWatch would refuse turns them off, saying so once.
pub fn init() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout)).ok();
    let namespace = std::env::var("METRICS_NAMESPACE").ok();
    let namespace = namespace.as_deref().unwrap_or(metrics::DEFAULT_NAMESPACE);
    match namespace {
        "" => metrics::publish(None),
        name if metrics::valid_namespace(name) => metrics::publish(Some(name)),
        _ => {
            tracing::warn!("METRICS_NAMESPACE is not a CloudWatch namespace; no metrics published");
            metrics::publish(None);
        }
    }
}

/// Replaces the default panic output (the message, which may quote request
/// data or a secret, on stderr) with one JSON log line naming where the
/// panic happened, and nothing else. Call it once at start-up, next to the
/// subscriber; the request a panic interrupted still logs its own line.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| report_panic(info.location())));
}

/// The panic hook's line: through the subscriber when there is one, else
/// the same fields written as JSON to stderr.
fn report_panic(location: Option<&Location<'_>>) {
    let (file, line, column) =
        location.map_or(("unknown", 0, 0), |l| (l.file(), l.line(), l.column()));
    if !has_subscriber() {
        let line = serde_json::json!({
            "level": "ERROR",
            "message": "panic",
            "file": file,
            "line": line,
            "column": column,
        });
        // Nowhere is left to report a failed write to.
        writeln!(std::io::stderr(), "{line}").ok();
    } else {
        tracing::error!(file, line, column, "panic");
    }
}

/// Whether a log line written here would reach a subscriber (`authctl`'s
/// admin commands set none up).
fn has_subscriber() -> bool {
    !tracing::dispatcher::get_default(|d| d.is::<NoSubscriber>())
}

/// The subscriber every binary uses, writing to `writer`; tests capture logs with it.
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .event_format(format::JsonLines)
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
    /// The request's id, for the audit events a change writes.
    pub request_id: Option<String>,
    /// What it did, for the metrics.
    pub tally: Tally,
}

/// What a request did, counted in its metrics: set by the logic as it does it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Access tokens signed (a login that opened or refreshed a session).
    pub tokens_minted: u32,
    /// Logins answered with the session's current token.
    pub tokens_reused: u32,
    /// Revocations that took effect: a session ended, all of a key's
    /// sessions, or a key.
    pub revocations: u32,
}

/// The one log line of a request (HTTP) or a call (authorizer), written the
/// same way by both adapters. Fields left `None` are left out of the line.
/// Ids only: never a key, a token or a secret.
#[derive(Debug)]
pub struct RequestLine<'a> {
    /// The function serving it.
    pub function: &'a str,
    /// The event shape, for the authorizer.
    pub kind: Option<&'a str>,
    /// The route, or `unknown`.
    pub route: &'a str,
    /// The route as the metrics' `Route` dimension: a template, never a
    /// raw path (the authorizer's `route` can be one).
    pub metric_route: &'a str,
    /// The HTTP method, for the HTTP adapter.
    pub method: Option<&'a str>,
    /// The HTTP status, for the HTTP adapter.
    pub status: Option<u16>,
    /// `ok`, `error`, `allow`, `deny`, `unauthorized` or `unavailable`.
    pub outcome: &'a str,
    /// The error code, when it failed.
    pub error: Option<&'a str>,
    /// The error's source chain, for a failure of ours (never the caller's input).
    pub detail: Option<String>,
    /// How many routes an authorizer policy allows.
    pub allowed_routes: Option<usize>,
    /// Whom it concerned.
    pub audit: &'a Audit,
    /// Time from arrival to answer.
    pub latency: std::time::Duration,
    /// DynamoDB operations it started (see [`metrics::counting_calls`]).
    pub dynamodb_calls: u32,
    /// The platform's request id, or one of ours.
    pub request_id: &'a str,
}

impl RequestLine<'_> {
    /// Writes the line at INFO with `message`, with its metrics as EMF when
    /// they are published (see [`metrics::publish`]), and hands them to the
    /// installed recorder.
    pub fn emit(&self, message: &str) {
        use metrics::Metric;
        let sample = self.sample();
        metrics::record(&sample);
        let namespace = metrics::namespace();
        let emf = namespace.map(|ns| sample.emf(ns, now_ms()));
        // Counts as integers (`1`, not `1.0`): shorter, and what they are.
        let member = |metric| namespace.and(sample.member(metric)).map(|v| v as u64);
        let dimension = |value| namespace.map(|_| value);
        tracing::info!(
            function = self.function,
            kind = self.kind,
            route = self.route,
            method = self.method,
            status = self.status,
            outcome = self.outcome,
            error = self.error,
            detail = self.detail,
            allowed_routes = self.allowed_routes,
            key_id = self.audit.key_id,
            session_id = self.audit.session_id,
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            request_id = self.request_id,
            Function = dimension(self.function),
            Route = dimension(self.metric_route),
            Requests = member(Metric::Requests),
            ClientErrors = member(Metric::ClientErrors),
            ServerErrors = member(Metric::ServerErrors),
            Latency = namespace.and(sample.member(Metric::Latency)),
            DynamoDbCalls = member(Metric::DynamoDbCalls),
            TokensMinted = member(Metric::TokensMinted),
            TokensReused = member(Metric::TokensReused),
            Revocations = member(Metric::Revocations),
            AuthorizerDenied = member(Metric::AuthorizerDenied),
            BackendUnavailable = member(Metric::BackendUnavailable),
            _aws = emf.as_deref(),
            "{message}"
        );
    }

    /// The line's metrics. An HTTP answer counts by its status (503 is a
    /// backend that failed); an authorizer call by its outcome: a refused
    /// token is the caller's error and a denial, a failure of ours a server
    /// error (API Gateway answers it 500 or 503).
    fn sample(&self) -> metrics::Sample<'_> {
        use metrics::Metric;
        let (client, server, unavailable, denied) = match (self.status, self.outcome) {
            (Some(status), _) => (
                (400..500).contains(&status),
                status >= 500,
                status == 503,
                false,
            ),
            (None, "allow") => (false, false, false, false),
            (None, "deny" | "unauthorized") => (true, false, false, true),
            (None, "unavailable") => (false, true, true, false),
            (None, _) => (false, true, false, false),
        };
        let mut sample = metrics::Sample::new(self.function, self.metric_route, self.latency);
        sample.set(Metric::ClientErrors, u32::from(client));
        sample.set(Metric::ServerErrors, u32::from(server));
        sample.set(Metric::BackendUnavailable, u32::from(unavailable));
        sample.set(Metric::AuthorizerDenied, u32::from(denied));
        sample.set(Metric::DynamoDbCalls, self.dynamodb_calls);
        let tally = self.audit.tally;
        sample.set(Metric::TokensMinted, tally.tokens_minted);
        sample.set(Metric::TokensReused, tally.tokens_reused);
        sample.set(Metric::Revocations, tally.revocations);
        sample
    }
}

/// Unix time in milliseconds, for EMF's timestamp; 0 for a clock before 1970.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing::Level;

    use super::{filter, has_subscriber, report_panic, subscriber};

    /// A log writer that keeps what it was given, for this crate's tests.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_logs_one_json_line_with_its_location_only() {
        let logs = Captured::default();
        let writer = logs.clone();
        let location = std::panic::Location::caller();
        tracing::subscriber::with_default(subscriber(move || writer.clone()), || {
            report_panic(Some(location));
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let [line] = &lines[..] else {
            panic!("one line expected: {text}")
        };
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "panic");
        assert_eq!(line["file"], location.file());
        assert_eq!(line["line"], location.line());
        let mut fields: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["column", "file", "level", "line", "message", "timestamp"]
        );
    }

    #[test]
    fn the_panic_line_goes_through_the_subscriber_only_when_there_is_one() {
        assert!(!has_subscriber());
        let sink = subscriber(std::io::sink);
        assert!(tracing::subscriber::with_default(sink, has_subscriber));
    }

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
