//! The API Gateway Lambda authorizer: bearer tokens in front of other teams' APIs.
//!
//! One [`Authorizer::handle`] answers all four event shapes API Gateway
//! sends (see [`event`] for how they are told apart):
//!
//! - **HTTP API, payload 2.0, simple responses**: `{"isAuthorized": bool,
//!   "context": {...}}` for the `routeKey`; `false` reaches the client as 403.
//!   Any failure, an outage included, is `false`.
//! - **HTTP API, payload 1.0**, **REST API TOKEN** and **REST API REQUEST**:
//!   an IAM policy (see [`policy`]). REST answers a missing, invalid, expired
//!   or revoked token with the error `Unauthorized` (API Gateway: 401) and an
//!   unreadable backend with another error (500, never a policy); payload 1.0
//!   answers both with a Deny policy (403), like payload 2.0.
//!
//! **Exact routes.** A policy allows exactly the listed routes the token's
//! scopes cover and nothing else. IAM's resource wildcards cannot say "one
//! path segment" (`*` and `?` both match `/`), so no policy here holds a
//! wildcard in an Allow:
//!
//! - By default ([`PolicyScope::Request`]) the policy allows or denies the
//!   called methodArn alone. The event names the route (payload 1.0:
//!   `routeKey`; REST REQUEST: `httpMethod` and `resource`); a TOKEN event
//!   names only the path, so every listed route the path fits must be
//!   covered. A path holding `*` or `?` is denied. Such a policy is right for
//!   this request and, if API Gateway reuses it from its cache, allows no
//!   other ARN, so caching can cost a 403 but never an unlisted allow.
//! - With `AUTHORIZER_POLICY_CACHE_TTL_SECONDS` above 0
//!   ([`PolicyScope::Stage`]), for IAM-policy authorizers with a result TTL,
//!   each token gets one policy for every route of the stage, since a TOKEN
//!   authorizer's cached policy is reused for any method and path. It can
//!   allow literal routes only, one ARN each; a route map with a path
//!   parameter is refused at init ([`AuthorizerConfig::new`]).
//!
//! A TOKEN event cannot tell an unlisted literal route from a listed
//! `{param}` beside it (`GET /v1/documents/new` next to
//! `GET /v1/documents/{id}`): list every route of the API, or use a REQUEST
//! authorizer, whose event names the route.
//!
//! Every token check is [`crate::domain::verify::verify`]: one DynamoDB read per
//! call. A cached answer is not checked again: a revoked token passes for up
//! to the authorizer's result TTL.

mod handler;

pub mod event;
pub mod policy;
pub mod routes;

use lambda_http::lambda_runtime::Diagnostic;
use thiserror::Error;

use crate::config::ConfigError;

pub use event::{Event, EventError, MethodArn, PolicyEvent, RequestRoute, Shape};
pub use handler::Authorizer;
pub use policy::{
    AuthContext, AuthorizerResponse, Decision, PolicyDocument, PolicyResponse, PolicyScope,
    SimpleResponse, Statement,
};
pub use routes::{Coverage, RouteScopes};

/// The environment variable holding the route map.
pub const ROUTE_SCOPES_VAR: &str = "AUTHORIZER_ROUTE_SCOPES";

/// The environment variable telling the function the result TTL of the
/// IAM-policy authorizers it serves (REST, HTTP API payload 1.0).
pub const POLICY_CACHE_TTL_VAR: &str = "AUTHORIZER_POLICY_CACHE_TTL_SECONDS";

/// API Gateway's longest authorizer result TTL.
const MAX_CACHE_TTL_SECONDS: u64 = 3600;

/// The authorizer's configuration: the route map and the kind of policy it
/// can be expressed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    routes: RouteScopes,
    policies: PolicyScope,
}

impl AuthorizerConfig {
    /// Reads `AUTHORIZER_ROUTE_SCOPES` and `AUTHORIZER_POLICY_CACHE_TTL_SECONDS`
    /// (default 0). A missing, malformed or inexpressible setting is logged
    /// as one line naming the variable and returned, so the function fails at init.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
            .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let routes = RouteScopes::from_lookup(&lookup)?;
        let ttl = match lookup(POLICY_CACHE_TTL_VAR).filter(|v| !v.trim().is_empty()) {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ttl| *ttl <= MAX_CACHE_TTL_SECONDS)
                .ok_or_else(|| ConfigError::Invalid {
                    name: POLICY_CACHE_TTL_VAR,
                    reason: format!("must be whole seconds from 0 to {MAX_CACHE_TTL_SECONDS}"),
                })?,
        };
        Self::new(routes, ttl)
    }

    /// The configuration for `routes` behind IAM-policy authorizers whose
    /// results API Gateway caches for `policy_cache_ttl_seconds`.
    ///
    /// # Errors
    /// With a TTL above 0, a route map holding a path parameter: a cached
    /// policy serves every route, and IAM's wildcards cannot allow
    /// `{param}`'s paths without also allowing unlisted routes below or
    /// beside it.
    pub fn new(routes: RouteScopes, policy_cache_ttl_seconds: u64) -> Result<Self, ConfigError> {
        if policy_cache_ttl_seconds == 0 {
            return Ok(Self {
                routes,
                policies: PolicyScope::Request,
            });
        }
        if let Some(route) = routes.first_parameterized() {
            return Err(ConfigError::Invalid {
                name: ROUTE_SCOPES_VAR,
                reason: format!(
                    "route {route} has a path parameter, but with \
                     {POLICY_CACHE_TTL_VAR} above 0 a token's IAM policy is reused for \
                     every route, and IAM's '*' and '?' also match '/', so no policy can \
                     allow the parameter without allowing unlisted routes below it; \
                     list only literal routes, or set the authorizer's result TTL and \
                     {POLICY_CACHE_TTL_VAR} to 0"
                ),
            });
        }
        Ok(Self {
            routes,
            policies: PolicyScope::Stage,
        })
    }

    /// The route map.
    pub fn routes(&self) -> &RouteScopes {
        &self.routes
    }

    /// The kind of IAM policy the authorizer answers with.
    pub fn policies(&self) -> PolicyScope {
        self.policies
    }
}

/// An authorizer call that ends in an error rather than a response. API
/// Gateway turns `Unauthorized` into 401 and any other error into 500; none
/// of them lets a request through.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum AuthorizerError {
    /// REST: the token is missing, malformed, expired or revoked. The message
    /// must be exactly `Unauthorized` for API Gateway to answer 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// REST: the revocation state or signing keys could not be read: fail
    /// closed with a 500 rather than guess.
    #[error("authorization backend unavailable")]
    Unavailable,
    /// An event of none of the four shapes, a malformed one, or a bug.
    #[error("authorizer internal error")]
    Internal,
}

impl From<AuthorizerError> for Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        let error_type = match e {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::Unavailable => "Unavailable",
            AuthorizerError::Internal => "InternalError",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routes: &str, ttl: Option<&str>) -> Result<AuthorizerConfig, ConfigError> {
        let (routes, ttl) = (routes.to_owned(), ttl.map(str::to_owned));
        AuthorizerConfig::from_lookup(move |name| match name {
            ROUTE_SCOPES_VAR => Some(routes.clone()),
            POLICY_CACHE_TTL_VAR => ttl.clone(),
            _ => None,
        })
    }

    #[test]
    fn without_a_policy_cache_any_route_map_gets_request_policies() {
        let map = "GET /v1/documents/{id}=read;GET /v1/documents/{id}/versions=read";
        for ttl in [None, Some("0"), Some(" ")] {
            assert_eq!(config(map, ttl).unwrap().policies(), PolicyScope::Request);
        }
    }

    #[test]
    fn with_a_policy_cache_a_literal_route_map_gets_stage_policies() {
        let c = config("GET /v1/whoami=read;ANY /v1/items=", Some("300")).unwrap();
        assert_eq!(c.policies(), PolicyScope::Stage);
    }

    #[test]
    fn with_a_policy_cache_a_route_map_with_a_parameter_is_refused_saying_why() {
        let map = "GET /v1/whoami=read;GET /v1/documents/{id}=read";
        let Err(ConfigError::Invalid { name, reason }) = config(map, Some("60")) else {
            panic!("expected a refusal");
        };
        assert_eq!(name, ROUTE_SCOPES_VAR);
        assert!(reason.contains("GET /v1/documents/{id}"), "{reason}");
        assert!(reason.contains(POLICY_CACHE_TTL_VAR), "{reason}");
        assert!(reason.contains("literal routes"), "{reason}");
        let greedy = config("GET /v1/files/{p+}=read", Some("1"));
        assert!(greedy.is_err(), "{greedy:?}");
    }

    #[test]
    fn a_cache_ttl_that_is_not_whole_seconds_up_to_an_hour_is_invalid() {
        for bad in ["-1", "3601", "1.5", "ten"] {
            let Err(ConfigError::Invalid { name, .. }) = config("GET /x=read", Some(bad)) else {
                panic!("{bad} should be invalid");
            };
            assert_eq!(name, POLICY_CACHE_TTL_VAR, "{bad}");
        }
    }

    #[test]
    fn unauthorized_reaches_api_gateway_as_exactly_that_message() {
        let d = Diagnostic::from(AuthorizerError::Unauthorized);
        assert_eq!(d.error_message, "Unauthorized");
        for other in [AuthorizerError::Unavailable, AuthorizerError::Internal] {
            assert_ne!(Diagnostic::from(other).error_message, "Unauthorized");
        }
    }
}
