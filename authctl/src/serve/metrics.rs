//! `GET /metrics`: the request metrics of the Lambdas' log lines, as
//! Prometheus counters and a latency histogram (OpenMetrics text), for a
//! local or container deployment to scrape.
//!
//! Every request the handler answers is one sample (see
//! `auth_shared::telemetry::metrics`); requests refused before it (a late
//! body, a foreign `Host`) are not.

use std::sync::Arc;

use auth_shared::telemetry::metrics::{Metric, Recorder, Sample};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Where `/metrics` is served.
pub const PATH: &str = "/metrics";

/// The scrape's content type: OpenMetrics 1.0 text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's labels: the same low-cardinality pair as the EMF dimensions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    function: String,
    route: String,
}

type Counters = Family<Labels, Counter>;
type Latencies = Family<Labels, Histogram, fn() -> Histogram>;

/// The counters and the histogram, shared by the recorder and the scrape.
pub struct Metrics {
    registry: Registry,
    counters: Vec<(Metric, Counters)>,
    latency: Latencies,
}

/// Latency buckets from 100 µs doubling to about 1.6 s: a verify on the
/// embedded store answers in tens of microseconds, a DynamoDB one in
/// milliseconds, and the SDK gives up on a call after a few seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 15))
}

impl Metrics {
    /// Every metric registered at zero, under `bearer_auth_`.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("bearer_auth");
        let mut counters = Vec::new();
        for metric in Metric::ALL {
            let Some((name, help)) = counter_of(metric) else {
                continue;
            };
            let family = Counters::default();
            registry.register(name, help, family.clone());
            counters.push((metric, family));
        }
        let latency = Latencies::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer",
            Unit::Seconds,
            latency.clone(),
        );
        Arc::new(Self {
            registry,
            counters,
            latency,
        })
    }

    /// The scrape's body.
    ///
    /// # Errors
    /// The encoder's, should it fail: never half a page.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The Prometheus name (without the prefix and `_total`) and help of a
/// counted metric; `None` for latency, which is the histogram.
fn counter_of(metric: Metric) -> Option<(&'static str, &'static str)> {
    Some(match metric {
        Metric::Requests => ("requests", "Requests answered"),
        Metric::ClientErrors => ("client_errors", "Answers in 4xx"),
        Metric::ServerErrors => ("server_errors", "Answers in 5xx"),
        Metric::Latency => return None,
        Metric::DynamoDbCalls => ("dynamodb_calls", "DynamoDB operations started"),
        Metric::TokensMinted => ("tokens_minted", "Access tokens signed"),
        Metric::TokensReused => ("tokens_reused", "Logins answered with the session's token"),
        Metric::Revocations => ("revocations", "Tokens, sessions or keys revoked"),
        Metric::AuthorizerDenied => ("authorizer_denied", "Authorizer calls denied"),
        Metric::BackendUnavailable => (
            "backend_unavailable",
            "Answers 503 because a backend failed",
        ),
    })
}

/// Feeds [`Metrics`] from the request lines.
pub struct Feed(pub Arc<Metrics>);

impl Recorder for Feed {
    fn record(&self, sample: &Sample<'_>) {
        let labels = Labels {
            function: sample.function.to_owned(),
            route: sample.route.to_owned(),
        };
        for (metric, family) in &self.0.counters {
            // Counts are whole numbers of at most a few per request.
            let count = sample.value(*metric) as u64;
            // A zero still creates the series, so every route that was
            // asked shows its error counters at 0 rather than not at all.
            family.get_or_create(&labels).inc_by(count);
        }
        self.0
            .latency
            .get_or_create(&labels)
            .observe(sample.value(Metric::Latency) / 1000.0);
    }
}
