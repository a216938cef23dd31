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
