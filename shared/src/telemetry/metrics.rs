//! The service's metrics: one set of names, units and dimensions, written as
//! CloudWatch Embedded Metric Format on each request's log line and served
//! by `authctl serve` at `GET /metrics` in the Prometheus text format.
//!
//! Dimensions are low-cardinality only: the function and the route
//! template. Key and session ids stay plain fields of the line, searchable
//! in Logs Insights, never dimensions (each value would be a paid metric).

/// The CloudWatch namespace when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "BearerAuth";

/// The dimension sets each request's metrics are published under: per
/// function (what the alarms watch, as an alarm cannot sum over a
/// dimension) and per function and route (what the dashboard breaks down).
pub const DIMENSION_SETS: [&[&str]; 2] = [&["Function"], &["Function", "Route"]];

/// One metric of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Requests (HTTP) or authorizer calls: 1 each.
    Requests,
    /// Answers in 4xx, or an authorizer refusal of the caller's token.
    ClientErrors,
    /// Answers in 5xx, or an authorizer call that failed on our side.
    ServerErrors,
    /// Time from arrival to answer, in milliseconds.
    Latency,
    /// DynamoDB operations the request started (retries count once).
    DynamoDbCalls,
    /// Access tokens signed.
    TokensMinted,
    /// Logins answered with the session's current token.
    TokensReused,
    /// Tokens, sessions or keys revoked.
    Revocations,
    /// Authorizer calls that denied the request (no valid token, or scopes short).
    AuthorizerDenied,
    /// Requests answered 503 because a backend (DynamoDB, Secrets Manager) failed.
    BackendUnavailable,
}

impl Metric {
    /// Every metric, in the order they are written.
    pub const ALL: [Self; 10] = [
        Self::Requests,
        Self::ClientErrors,
        Self::ServerErrors,
        Self::Latency,
        Self::DynamoDbCalls,
        Self::TokensMinted,
        Self::TokensReused,
        Self::Revocations,
        Self::AuthorizerDenied,
        Self::BackendUnavailable,
    ];

    /// Its CloudWatch name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "Requests",
            Self::ClientErrors => "ClientErrors",
            Self::ServerErrors => "ServerErrors",
            Self::Latency => "Latency",
            Self::DynamoDbCalls => "DynamoDbCalls",
            Self::TokensMinted => "TokensMinted",
            Self::TokensReused => "TokensReused",
            Self::Revocations => "Revocations",
            Self::AuthorizerDenied => "AuthorizerDenied",
            Self::BackendUnavailable => "BackendUnavailable",
        }
    }

    /// Its CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Latency => "Milliseconds",
            _ => "Count",
        }
    }
}

/// One request's metrics: what its log line publishes and `/metrics` counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The `Function` dimension.
    pub function: &'a str,
    /// The `Route` dimension: a route template, never a raw path.
    pub route: &'a str,
    values: [f64; Metric::ALL.len()],
}

impl<'a> Sample<'a> {
    /// A request of `function` on `route` answered after `latency`, all
    /// counts zero but `Requests`.
    pub fn new(function: &'a str, route: &'a str, latency: std::time::Duration) -> Self {
        let mut sample = Self {
            function,
            route,
            values: [0.0; Metric::ALL.len()],
        };
        sample.set(Metric::Requests, 1);
        sample.put(Metric::Latency, latency.as_secs_f64() * 1000.0);
        sample
    }

    /// Sets a count.
    pub fn set(&mut self, metric: Metric, count: u32) {
        self.put(metric, f64::from(count));
    }

    // Every metric has a slot: `values` is as long as `Metric::ALL`.
    fn put(&mut self, metric: Metric, value: f64) {
        if let Some(slot) = self.values.get_mut(metric as usize) {
            *slot = value;
        }
    }

    /// A metric's value: a count, or milliseconds for [`Metric::Latency`].
    pub fn value(&self, metric: Metric) -> f64 {
        self.values.get(metric as usize).copied().unwrap_or(0.0)
    }

    /// Whether the line carries `metric`: the ones every rate and
    /// percentile is computed from always, even at zero (a missing zero
    /// would leave a rate's denominator short); the event counts when
    /// they happened, which keeps most lines shorter.
    fn carries(&self, metric: Metric) -> bool {
        matches!(
            metric,
            Metric::Requests
                | Metric::ClientErrors
                | Metric::ServerErrors
                | Metric::Latency
                | Metric::DynamoDbCalls
        ) || self.value(metric) != 0.0
    }

    /// The EMF metadata (`_aws`) of this sample in `namespace`, at
    /// `timestamp_ms`, as JSON text: the metrics the line carries, under
    /// both [`DIMENSION_SETS`].
    pub fn emf(&self, namespace: &str, timestamp_ms: u64) -> String {
        let metrics: Vec<serde_json::Value> = Metric::ALL
            .iter()
            .filter(|m| self.carries(**m))
            .map(|m| serde_json::json!({"Name": m.name(), "Unit": m.unit()}))
            .collect();
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": DIMENSION_SETS,
                "Metrics": metrics,
            }],
        })
        .to_string()
    }

    /// The value of `metric` as the line's member of that name, if it carries it.
    pub fn member(&self, metric: Metric) -> Option<f64> {
        self.carries(metric).then(|| self.value(metric))
    }
}

/// Where samples go besides the log line (`authctl serve`'s `/metrics`).
pub trait Recorder: Send + Sync {
    /// Adds one request's sample.
    fn record(&self, sample: &Sample<'_>);
}

static RECORDER: std::sync::OnceLock<Box<dyn Recorder>> = std::sync::OnceLock::new();
static NAMESPACE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sends every request's sample to `recorder` from now on, for the life of
/// the process. A second call is refused and returns false: one process
/// serves one set of metrics.
pub fn install(recorder: Box<dyn Recorder>) -> bool {
    RECORDER.set(recorder).is_ok()
}

/// Publishes request lines' metrics as EMF in `namespace` (`None`: not at
/// all) for the life of the process; the first call decides.
pub fn publish(namespace: Option<&str>) {
    NAMESPACE.get_or_init(|| namespace.map(str::to_owned));
}

/// The namespace EMF is published in, once [`publish`] chose one.
pub(crate) fn namespace() -> Option<&'static str> {
    NAMESPACE.get().and_then(Option::as_deref)
}

/// Hands `sample` to the installed recorder, if any.
pub(crate) fn record(sample: &Sample<'_>) {
    if let Some(recorder) = RECORDER.get() {
        recorder.record(sample);
    }
}

/// Whether `name` can be a CloudWatch namespace of ours: 1 to 255 of
/// letters, digits and `. - _ / # :` and spaces, not under `AWS/`.
pub fn valid_namespace(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with("AWS/")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .-_/#:".contains(c))
}

tokio::task_local! {
    static DYNAMODB_CALLS: std::sync::Arc<std::sync::atomic::AtomicU32>;
}

/// Runs `work` and counts the DynamoDB operations it starts (as the SDK
/// interceptor reports them through [`count_dynamodb_call`]): a task-local
/// count, so concurrent requests of one process each get their own.
pub async fn counting_calls<F: std::future::Future>(work: F) -> (F::Output, u32) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let output = DYNAMODB_CALLS.scope(calls.clone(), work).await;
    (output, calls.load(std::sync::atomic::Ordering::Relaxed))
}

/// Counts one DynamoDB operation for the request running on this task, if
/// it is being counted.
pub fn count_dynamodb_call() {
    DYNAMODB_CALLS
        .try_with(|calls| calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        .ok();
}
