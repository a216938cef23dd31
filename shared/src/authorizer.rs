//! The API Gateway Lambda authorizer: bearer tokens in front of other teams' APIs.
//!
//! One [`Authorizer::handle`] serves both shapes API Gateway sends:
//!
//! - **HTTP API, payload 2.0, simple responses** (a REQUEST authorizer): the
//!   token comes from the `authorization` header, the route from `routeKey`,
//!   and the answer is `{"isAuthorized": bool, "context": {...}}`. A `false`
//!   reaches the client as 403. Configure the identity source as the
//!   Authorization header *and* `$context.routeKey`, so that API Gateway caches
//!   each decision per token and route.
//! - **REST API TOKEN authorizer**: the token comes from `authorizationToken`,
//!   and the answer is an IAM policy. API Gateway caches that policy by the
//!   token alone and reuses it for every method and resource of the stage, so
//!   the policy never says "allow the methodArn of this call": it allows
//!   exactly the configured routes whose scopes the token holds, with explicit
//!   Deny statements where IAM wildcards would reach further (see
//!   [`RouteScopes::policy_resources`]), or denies the whole stage.
//!
//! Every token check is [`crate::verify::verify`]: one DynamoDB read per call.
//! Failures never allow. An invalid, expired or revoked token is
//! [`AuthorizerError::Unauthorized`] for REST (API Gateway answers 401) and
//! `isAuthorized: false` for HTTP APIs. An unreadable backend is
//! [`AuthorizerError::Unavailable`] for REST (API Gateway answers 500, never a
//! policy that could allow) and `isAuthorized: false` for HTTP APIs.
//!
//! Required scopes per route come from `AUTHORIZER_ROUTE_SCOPES` (see
//! [`RouteScopes::parse`]); a route that is not listed is denied.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_http::http::header::AUTHORIZATION;
use lambda_http::lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::app::App;
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::scope::Scopes;
use crate::telemetry::Audit;
use crate::token::{Claims, TokenError};
use crate::verify::{self, Verified};

/// The environment variable holding the route map.
pub const ROUTE_SCOPES_VAR: &str = "AUTHORIZER_ROUTE_SCOPES";

/// HTTP methods a route may name; `ANY` matches every method.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// A configured route: a method and a path template as API Gateway spells
/// them (`GET /v1/documents/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    method: String,
    path: String,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl RouteKey {
    /// Parses `METHOD /path`, the form of an HTTP API `routeKey`.
    fn parse(s: &str) -> Result<Self, String> {
        let (method, path) = s
            .split_once(' ')
            .ok_or_else(|| format!("route {s:?} must be METHOD and path, e.g. GET /v1/whoami"))?;
        if !METHODS.contains(&method) {
            return Err(format!(
                "route {s:?}: method must be one of {}",
                METHODS.join(", ")
            ));
        }
        let segments_ok = path.starts_with('/')
            && path.split('/').skip(1).all(|segment| {
                let inner = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
                match inner {
                    Some(name) => {
                        let name = name.strip_suffix('+').unwrap_or(name);
                        !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    }
                    // `*` and `?` would act as wildcards in the policy's
                    // resource ARN and widen it; braces only as a whole segment.
                    None => segment.bytes().all(|b| {
                        b.is_ascii_graphic() && !matches!(b, b'*' | b'?' | b'{' | b'}' | b'#')
                    }),
                }
            });
        if !segments_ok {
            return Err(format!(
                "route {s:?}: path must start with '/' and hold no '*', '?' or '#'; \
                 parameters are whole segments like {{id}} or {{proxy+}}"
            ));
        }
        Ok(Self {
            method: method.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The method and each path segment, as a resource ARN sees them.
    fn parts(&self) -> Vec<Part<'_>> {
        let method = if self.method == "ANY" {
            Part::One
        } else {
            Part::Lit(&self.method)
        };
        let segments = self.path.split('/').skip(1).map(|segment| {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.ends_with('+') => Part::Rest,
                Some(_) => Part::One,
                None => Part::Lit(segment),
            }
        });
        std::iter::once(method).chain(segments).collect()
    }

    /// This route's resource pattern below the stage (`GET/v1/documents/*`):
    /// `ANY` and each `{param}` become `*`.
    fn pattern(&self) -> String {
        pattern_of(&self.parts())
    }

    /// Patterns for what this route's pattern reaches beyond the route: IAM's
    /// `*` also matches `/`, so `GET/v1/documents/*` reaches
    /// `GET/v1/documents/42/admin`. One pattern per single-segment wildcard,
    /// with that wildcard spanning two segments or more.
    fn overreach(&self) -> Vec<String> {
        let parts = self.parts();
        parts
            .iter()
            .enumerate()
            .filter(|(_, part)| matches!(part, Part::One))
            .map(|(i, _)| {
                let mut wider = parts.clone();
                if let Some(part) = wider.get_mut(i) {
                    *part = Part::Lit("*/*");
                }
                pattern_of(&wider)
            })
            .collect()
    }

    /// Whether IAM `pattern` (a resource below the stage, `*` matching any
    /// run of characters) matches some request API Gateway routes to this
    /// route: each `{param}` one non-empty segment, `{param+}` one or more,
    /// `ANY` any method.
    fn reached_by(&self, pattern: &str) -> bool {
        let mut route = Vec::new();
        for (i, part) in self.parts().into_iter().enumerate() {
            if i > 0 {
                route.push(Tok::Lit(b'/'));
            }
            match part {
                Part::Lit(text) => route.extend(text.bytes().map(Tok::Lit)),
                Part::One => route.extend([Tok::Segment, Tok::SegmentStar]),
                Part::Rest => route.extend([Tok::Any, Tok::AnyStar]),
            }
        }
        intersects(pattern.as_bytes(), &route)
    }
}

/// A piece of a route as a resource ARN sees it.
#[derive(Debug, Clone, Copy)]
enum Part<'a> {
    /// Literal text.
    Lit(&'a str),
    /// `ANY` or `{param}`: exactly one segment.
    One,
    /// `{param+}`: one segment or more.
    Rest,
}

fn pattern_of(parts: &[Part<'_>]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .map(|part| match part {
            Part::Lit(text) => text,
            Part::One | Part::Rest => "*",
        })
        .collect();
    texts.join("/")
}

/// One step of the requests a route receives.
#[derive(Debug, Clone, Copy)]
enum Tok {
    /// This byte.
    Lit(u8),
    /// One byte other than `/`.
    Segment,
    /// Any number of bytes other than `/`.
    SegmentStar,
    /// One byte.
    Any,
    /// Any number of bytes.
    AnyStar,
}

/// Whether some string is matched both by the IAM pattern (`*` any run of
/// bytes; our patterns never hold `?`) and by the route's tokens: a search
/// over pairs of positions, each step consuming one byte on both sides or an
/// empty star on one.
fn intersects(pattern: &[u8], route: &[Tok]) -> bool {
    let mut seen = vec![false; (pattern.len() + 1) * (route.len() + 1)];
    let mut todo = vec![(0, 0)];
    while let Some((i, j)) = todo.pop() {
        let index = i * (route.len() + 1) + j;
        match seen.get_mut(index) {
            Some(seen) if !*seen => *seen = true,
            _ => continue,
        }
        if i == pattern.len() && j == route.len() {
            return true;
        }
        let star = pattern.get(i) == Some(&b'*');
        if star {
            todo.push((i + 1, j));
        }
        let tok = route.get(j).copied();
        if matches!(tok, Some(Tok::SegmentStar | Tok::AnyStar)) {
            todo.push((i, j + 1));
        }
        let (Some(&byte), Some(tok)) = (pattern.get(i), tok) else {
            continue;
        };
        let fits = star
            || match tok {
                Tok::Lit(b) => b == byte,
                Tok::Segment | Tok::SegmentStar => byte != b'/',
                Tok::Any | Tok::AnyStar => true,
            };
        let next_i = if star { i } else { i + 1 };
        let next_j = match tok {
            Tok::SegmentStar | Tok::AnyStar => j,
            _ => j + 1,
        };
        if fits && (next_i, next_j) != (i, j) {
            todo.push((next_i, next_j));
        }
    }
    false
}

/// The scopes each protected route requires, from `AUTHORIZER_ROUTE_SCOPES`.
///
/// Invariants: route keys are unique and well formed; a route that is not
/// listed is denied to every token; a route listed with no scopes admits any
/// valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScopes(BTreeMap<RouteKey, Scopes>);

impl RouteScopes {
    /// Reads and parses `AUTHORIZER_ROUTE_SCOPES`. A missing or malformed
    /// value is logged as one line naming the variable and returned, so the
    /// function fails at init.
    pub fn from_env() -> Result<Self, ConfigError> {
        std::env::var(ROUTE_SCOPES_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(ROUTE_SCOPES_VAR))
            .and_then(|v| Self::parse(&v))
            .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
    }

    /// Parses `METHOD /path=scope scope;METHOD /path=...`: entries separated by
    /// `;`, each a route key as API Gateway spells it, `=`, and the
    /// space-separated scopes a token must all hold (none: any valid token).
    /// Whitespace around entries and an empty last entry are ignored.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable: no routes, an entry
    /// without `=`, an unknown method, a path that is not a clean template, a
    /// malformed scope, or a route listed twice.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: ROUTE_SCOPES_VAR,
            reason,
        };
        let mut routes = BTreeMap::new();
        for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (route, scopes) = entry.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "entry {entry:?} must be ROUTE=SCOPES, e.g. GET /v1/whoami=read"
                ))
            })?;
            let route = RouteKey::parse(route.trim()).map_err(invalid)?;
            let scopes = scopes.split_whitespace().collect::<Vec<_>>().join(" ");
            let scopes = if scopes.is_empty() {
                Scopes::default()
            } else {
                Scopes::parse(&scopes).map_err(|e| invalid(format!("route {route}: {e}")))?
            };
            let listed = route.to_string();
            if routes.insert(route, scopes).is_some() {
                return Err(invalid(format!("route {listed} is listed twice")));
            }
        }
        if routes.is_empty() {
            return Err(invalid("lists no routes".into()));
        }
        Ok(Self(routes))
    }

    /// The scopes `route_key` (`GET /v1/whoami`) requires; `None` when the
    /// route is not listed, which means deny.
    pub fn required(&self, route_key: &str) -> Option<&Scopes> {
        let route = RouteKey::parse(route_key).ok()?;
        self.0.get(&route)
    }

    /// The resources (below the stage, e.g. `GET/v1/documents/*`) a policy
    /// for a token holding `held` allows and denies. Independent of the route
    /// being called, so a cached policy is right for every route.
    ///
    /// Allowed: each route whose required scopes are all in `held`. Because
    /// IAM's `*` also matches `/`, an allowed `{param}` could reach further;
    /// so it denies explicitly, and Deny wins in IAM: every listed route the
    /// token may not call that an allowed pattern reaches, and what an allowed
    /// pattern reaches beyond its own route (`GET/v1/documents/*/*`) unless
    /// that would also deny an allowed route. In that last case a route that
    /// is not listed, below an allowed `{param}`, is reachable: list every
    /// route behind the authorizer.
    pub fn policy_resources(&self, held: &Scopes) -> (Vec<String>, Vec<String>) {
        let (allowed, refused): (Vec<_>, Vec<_>) = self
            .0
            .iter()
            .partition(|(_, required)| required.is_subset(held));
        let allowed: Vec<&RouteKey> = allowed.into_iter().map(|(route, _)| route).collect();
        let allow: Vec<String> = allowed.iter().map(|route| route.pattern()).collect();
        let mut deny: Vec<String> = refused
            .into_iter()
            .map(|(route, _)| route)
            .filter(|route| allow.iter().any(|pattern| route.reached_by(pattern)))
            .map(RouteKey::pattern)
            .collect();
        for wider in allowed.iter().flat_map(|route| route.overreach()) {
            if !allowed.iter().any(|route| route.reached_by(&wider)) && !deny.contains(&wider) {
                deny.push(wider);
            }
        }
        (allow, deny)
    }
}

/// A REST API `methodArn`:
/// `arn:PARTITION:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    stage_prefix: String,
    method: String,
    path: String,
}

impl MethodArn {
    /// Parses a methodArn. The API and stage must be plain names: a wildcard
    /// there would widen every policy built on them.
    pub fn parse(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("execute-api"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let mut resource = parts.next()?.splitn(4, '/');
        let (api, stage, method) = (resource.next()?, resource.next()?, resource.next()?);
        let path = resource.next().unwrap_or("");
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b'?' | b'/' | b':'))
        };
        if ![partition, region, account, api, stage, method]
            .into_iter()
            .all(plain)
        {
            return None;
        }
        Some(Self {
            stage_prefix: format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/"),
            method: method.to_owned(),
            path: format!("/{path}"),
        })
    }

    /// `arn:PARTITION:execute-api:REGION:ACCOUNT:API/STAGE/`.
    pub fn stage_prefix(&self) -> &str {
        &self.stage_prefix
    }

    /// `METHOD /path` of the call, for the log line only: the policy never
    /// depends on it.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the authorizer tells API Gateway about the caller: ids and scope, all public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthContext {
    /// The API key id.
    pub sub: String,
    /// The session id.
    pub session_id: String,
    /// The token's scopes, space-separated.
    pub scope: String,
    /// The token id.
    pub jti: String,
}

impl From<&Claims> for AuthContext {
    fn from(claims: &Claims) -> Self {
        Self {
            sub: claims.sub.clone(),
            session_id: claims.sid.clone(),
            scope: claims.scope.clone(),
            jti: claims.jti.clone(),
        }
    }
}

/// An HTTP API simple response (payload 2.0, `EnableSimpleResponses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    /// Whether API Gateway lets the request through; `false` is a 403.
    pub is_authorized: bool,
    /// Who the caller is; only when authorized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthContext>,
}

/// One statement of an IAM policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Always `execute-api:Invoke`.
    pub action: &'static str,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// Resource ARNs.
    pub resource: Vec<String>,
}

/// An IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    pub version: &'static str,
    /// Allow the permitted routes (then Deny what their wildcards must not
    /// reach), or Deny the whole stage.
    pub statement: Vec<Statement>,
}

impl PolicyDocument {
    /// The policy for a token holding `held`: Allow exactly the routes it may
    /// call, with the explicit Deny that keeps IAM wildcards from reaching
    /// further (see [`RouteScopes::policy_resources`]); or, when it may call
    /// none, an explicit Deny of the whole stage.
    pub fn for_scopes(routes: &RouteScopes, stage_prefix: &str, held: &Scopes) -> Self {
        let (allow, deny) = routes.policy_resources(held);
        let under_stage = |patterns: Vec<String>| {
            patterns
                .into_iter()
                .map(|p| format!("{stage_prefix}{p}"))
                .collect::<Vec<_>>()
        };
        let statement = |effect, resource| Statement {
            action: "execute-api:Invoke",
            effect,
            resource,
        };
        let mut statements = Vec::new();
        if allow.is_empty() {
            statements.push(statement("Deny", vec![format!("{stage_prefix}*/*")]));
        } else {
            statements.push(statement("Allow", under_stage(allow)));
            if !deny.is_empty() {
                statements.push(statement("Deny", under_stage(deny)));
            }
        }
        Self {
            version: "2012-10-17",
            statement: statements,
        }
    }

    /// Whether any statement allows something.
    pub fn allows_anything(&self) -> bool {
        self.statement.iter().any(|s| s.effect == "Allow")
    }
}

/// A REST API authorizer's answer: the caller and its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    /// The API key id.
    pub principal_id: String,
    /// What the caller may invoke.
    pub policy_document: PolicyDocument,
    /// Who the caller is.
    pub context: AuthContext,
}

/// The authorizer's answer, in the shape of the event it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuthorizerResponse {
    /// To an HTTP API (payload 2.0).
    Simple(SimpleResponse),
    /// To a REST API TOKEN authorizer.
    Policy(PolicyResponse),
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
    /// An event of neither shape, a malformed methodArn, or a bug.
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

/// How one call ended, for the log line.
struct Outcome {
    kind: &'static str,
    route: Option<String>,
    outcome: &'static str,
    error: Option<&'static str>,
    detail: Option<String>,
    allowed_routes: Option<usize>,
}

impl Outcome {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            route: None,
            outcome: "error",
            error: None,
            detail: None,
            allowed_routes: None,
        }
    }

    fn failed(&mut self, outcome: &'static str, error: &ApiError) {
        self.outcome = outcome;
        self.error = Some(error.code());
        if error.status() >= 500 {
            self.detail = Some(error.source_chain());
        }
    }
}

/// The authorizer: the service's state and the route map, built once per cold start.
#[derive(Clone)]
pub struct Authorizer {
    app: App,
    routes: RouteScopes,
}

impl Authorizer {
    /// An authorizer checking tokens with `app` against `routes`.
    pub fn new(app: App, routes: RouteScopes) -> Self {
        Self { app, routes }
    }

    /// Handles one event of either shape: `"type": "TOKEN"` is a REST TOKEN
    /// authorizer, `"version": "2.0"` (or, without a version, a `routeKey`)
    /// an HTTP API one. Anything else (a REST REQUEST authorizer, payload
    /// 1.0) is [`AuthorizerError::Internal`].
    /// Writes one log line (kind, route, outcome, key id, session id,
    /// latency), never the token.
    ///
    /// # Errors
    /// See [`AuthorizerError`]; HTTP API calls only fail on a malformed event.
    pub async fn handle(
        &self,
        event: Value,
        request_id: &str,
    ) -> Result<AuthorizerResponse, AuthorizerError> {
        let started = Instant::now();
        let mut audit = Audit::default();
        let is_token = event.get("type").and_then(Value::as_str) == Some("TOKEN");
        let is_http = match event.get("version") {
            Some(version) => version == "2.0",
            None => event.get("routeKey").is_some(),
        };
        let (result, log) = if is_token {
            self.rest(event, &mut audit).await
        } else if is_http {
            self.http(event, &mut audit).await
        } else {
            let mut log = Outcome::new("unknown");
            log.detail = Some("neither a TOKEN nor a payload 2.0 event".into());
            (Err(AuthorizerError::Internal), log)
        };
        tracing::info!(
            function = "authorizer",
            kind = log.kind,
            route = log.route.as_deref().unwrap_or("unknown"),
            outcome = log.outcome,
            error = log.error,
            detail = log.detail,
            allowed_routes = log.allowed_routes,
            key_id = audit.key_id,
            session_id = audit.session_id,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            request_id,
            "authorize"
        );
        result
    }

    async fn http(
        &self,
        event: Value,
        audit: &mut Audit,
    ) -> (Result<AuthorizerResponse, AuthorizerError>, Outcome) {
        let mut log = Outcome::new("http_api");
        let event: ApiGatewayV2CustomAuthorizerV2Request = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                log.detail = Some(format!("malformed payload 2.0 event: {}", shape(&e)));
                return (Err(AuthorizerError::Internal), log);
            }
        };
        let deny = Ok(AuthorizerResponse::Simple(SimpleResponse {
            is_authorized: false,
            context: None,
        }));
        let Some(route) = event.route_key.or(event.request_context.route_key) else {
            log.outcome = "deny";
            log.error = Some("route_not_configured");
            return (deny, log);
        };
        let required = self.routes.required(&route).cloned();
        log.route = Some(route);
        let Some(required) = required else {
            log.outcome = "deny";
            log.error = Some("route_not_configured");
            return (deny, log);
        };
        let header = event
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let required = (!required.is_empty()).then(|| required.to_string());
        match verify::verify(&self.app, bearer(header), required.as_deref(), audit).await {
            Ok(Verified { claims, .. }) => {
                log.outcome = "allow";
                let context = Some(AuthContext::from(&claims));
                (
                    Ok(AuthorizerResponse::Simple(SimpleResponse {
                        is_authorized: true,
                        context,
                    })),
                    log,
                )
            }
            Err(e) => {
                let outcome = if e.status() >= 500 {
                    "unavailable"
                } else {
                    "deny"
                };
                log.failed(outcome, &e);
                (deny, log)
            }
        }
    }

    async fn rest(
        &self,
        event: Value,
        audit: &mut Audit,
    ) -> (Result<AuthorizerResponse, AuthorizerError>, Outcome) {
        let mut log = Outcome::new("rest_token");
        let event: ApiGatewayCustomAuthorizerRequest = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                log.detail = Some(format!("malformed TOKEN event: {}", shape(&e)));
                return (Err(AuthorizerError::Internal), log);
            }
        };
        let Some(arn) = event.method_arn.as_deref().and_then(MethodArn::parse) else {
            log.detail = Some("methodArn is missing or not an execute-api ARN".into());
            return (Err(AuthorizerError::Internal), log);
        };
        log.route = Some(arn.route());
        let token = bearer(event.authorization_token.as_deref());
        let verified = match verify::verify(&self.app, token, None, audit).await {
            Ok(v) => v,
            Err(e @ ApiError::InvalidToken(_)) => {
                log.failed("unauthorized", &e);
                return (Err(AuthorizerError::Unauthorized), log);
            }
            Err(e @ ApiError::Unavailable(_)) => {
                log.failed("unavailable", &e);
                return (Err(AuthorizerError::Unavailable), log);
            }
            Err(e) => {
                log.failed("error", &e);
                return (Err(AuthorizerError::Internal), log);
            }
        };
        let claims = verified.claims;
        let held = if claims.scope.is_empty() {
            Ok(Scopes::default())
        } else {
            Scopes::parse(&claims.scope)
        };
        let Ok(held) = held else {
            log.failed("unauthorized", &ApiError::InvalidToken(TokenError::Claims));
            return (Err(AuthorizerError::Unauthorized), log);
        };
        let policy_document = PolicyDocument::for_scopes(&self.routes, arn.stage_prefix(), &held);
        let allowed: usize = policy_document
            .statement
            .iter()
            .filter(|s| s.effect == "Allow")
            .map(|s| s.resource.len())
            .sum();
        log.outcome = if allowed > 0 { "allow" } else { "deny" };
        log.allowed_routes = Some(allowed);
        (
            Ok(AuthorizerResponse::Policy(PolicyResponse {
                principal_id: claims.sub.clone(),
                policy_document,
                context: AuthContext::from(&claims),
            })),
            log,
        )
    }
}

/// The token of an `Authorization: Bearer <token>` value; any other scheme,
/// or none, is no token.
fn bearer(value: Option<&str>) -> Option<&str> {
    let (scheme, token) = value?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What is wrong with an event's shape, for the log. serde's "invalid
/// type/value" messages quote the offending value, which could be a token.
fn shape(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        "a field has the wrong type or value".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/";

    fn routes(value: &str) -> RouteScopes {
        RouteScopes::parse(value).unwrap()
    }

    fn reason(value: &str) -> String {
        match RouteScopes::parse(value).unwrap_err() {
            ConfigError::Invalid { name, reason } => {
                assert_eq!(name, ROUTE_SCOPES_VAR);
                reason
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_route_map_parses_into_required_scopes() {
        let r = routes("GET /v1/whoami=read;POST /v1/documents=write documents:write");
        assert_eq!(r.required("GET /v1/whoami").unwrap().to_string(), "read");
        assert_eq!(
            r.required("POST /v1/documents").unwrap().to_string(),
            "documents:write write"
        );
    }

    #[test]
    fn an_unlisted_route_has_no_requirement_and_is_denied() {
        let r = routes("GET /v1/whoami=read");
        assert_eq!(r.required("POST /v1/whoami"), None);
        assert_eq!(r.required("GET /v1/other"), None);
        assert_eq!(r.required("$default"), None);
        assert_eq!(r.required("get /v1/whoami"), None);
    }

    #[test]
    fn a_route_with_an_empty_scope_set_admits_any_valid_token() {
        let r = routes("GET /v1/public=");
        assert!(r.required("GET /v1/public").unwrap().is_empty());
    }

    #[test]
    fn whitespace_around_entries_and_a_trailing_separator_are_ignored() {
        let r = routes(" GET /v1/whoami = read ;\n POST /v1/documents=write  documents:write ; ");
        assert_eq!(r.required("GET /v1/whoami").unwrap().to_string(), "read");
        assert_eq!(
            r.required("POST /v1/documents").unwrap().to_string(),
            "documents:write write"
        );
    }

    #[test]
    fn path_parameters_and_any_are_route_keys_as_api_gateway_spells_them() {
        let r = routes("ANY /v1/items/{id}=read;GET /v1/files/{proxy+}=read");
        assert!(r.required("ANY /v1/items/{id}").is_some());
        assert!(r.required("GET /v1/files/{proxy+}").is_some());
    }

    #[test]
    fn malformed_route_maps_are_rejected_naming_the_variable() {
        assert!(reason("GET /v1/whoami").contains("ROUTE=SCOPES"));
        assert!(reason("FETCH /v1/whoami=read").contains("method must be one of"));
        assert!(reason("get /v1/whoami=read").contains("method must be one of"));
        assert!(reason("GET v1/whoami=read").contains("path must start"));
        assert!(reason("GET /v1/*=read").contains("path must start"));
        assert!(reason("GET /v1/a?b=read").contains("path must start"));
        assert!(reason("GET /v1/{=read").contains("path must start"));
        assert!(reason("GET /v1/x{id}=read").contains("path must start"));
        assert!(reason("GET /v1/{}=read").contains("path must start"));
        assert!(reason("GET/v1=read").contains("METHOD and path"));
        assert!(reason("GET /v1/whoami=re\"ad").contains("scope"));
        assert!(reason("GET /v1/whoami=read;GET /v1/whoami=write").contains("listed twice"));
        assert!(reason(" ; ").contains("no routes"));
        let err = RouteScopes::parse("GET /x").unwrap_err().to_string();
        assert!(
            err.starts_with("AUTHORIZER_ROUTE_SCOPES is invalid"),
            "{err}"
        );
    }

    #[test]
    fn resource_arns_replace_parameters_and_any_with_wildcards() {
        let arn = |key: &str| RouteKey::parse(key).unwrap().pattern();
        assert_eq!(arn("GET /v1/whoami"), "GET/v1/whoami");
        assert_eq!(arn("DELETE /v1/documents/{id}"), "DELETE/v1/documents/*");
        assert_eq!(arn("GET /v1/{user}/files/{proxy+}"), "GET/v1/*/files/*");
        assert_eq!(arn("ANY /v1/items"), "*/v1/items");
        assert_eq!(arn("GET /"), "GET/");
    }

    /// API Gateway's decision for a call to `route` (`GET /v1/x`) under
    /// `policy`: an explicit Deny wins, otherwise it needs an Allow.
    fn decides(policy: &PolicyDocument, route: &str) -> bool {
        let (method, path) = route.split_once(' ').unwrap();
        let arn: Vec<Tok> = format!("{STAGE}{method}{path}")
            .bytes()
            .map(Tok::Lit)
            .collect();
        let matching = |effect: &str| {
            policy.statement.iter().any(|s| {
                s.effect == effect && s.resource.iter().any(|r| intersects(r.as_bytes(), &arn))
            })
        };
        !matching("Deny") && matching("Allow")
    }

    fn policy(routes_value: &str, held: &str) -> PolicyDocument {
        PolicyDocument::for_scopes(&routes(routes_value), STAGE, &Scopes::parse(held).unwrap())
    }

    #[test]
    fn the_simulated_iam_wildcard_crosses_slashes_as_iam_does() {
        let p = PolicyDocument {
            version: "2012-10-17",
            statement: vec![Statement {
                action: "execute-api:Invoke",
                effect: "Allow",
                resource: vec![format!("{STAGE}GET/v1/documents/*")],
            }],
        };
        assert!(decides(&p, "GET /v1/documents/42"));
        assert!(decides(&p, "GET /v1/documents/42/admin"));
        assert!(!decides(&p, "GET /v1/documents"));
        assert!(!decides(&p, "POST /v1/documents/42"));
    }

    #[test]
    fn a_parameter_never_reaches_a_listed_route_below_it_that_the_token_lacks() {
        let map = "GET /v1/documents/{id}=read;GET /v1/documents/{id}/admin=admin";
        let p = policy(map, "read");
        assert!(decides(&p, "GET /v1/documents/42"), "{p:?}");
        assert!(!decides(&p, "GET /v1/documents/42/admin"), "{p:?}");
        assert!(
            !decides(&p, "GET /v1/documents/42/unlisted"),
            "nor an unlisted one: {p:?}"
        );
        let p = policy(map, "admin");
        assert!(decides(&p, "GET /v1/documents/42/admin"), "{p:?}");
        assert!(!decides(&p, "GET /v1/documents/42"), "{p:?}");
        assert!(!decides(&p, "GET /v1/documents/a/b/admin"), "{p:?}");
        let p = policy(map, "read admin");
        assert!(decides(&p, "GET /v1/documents/42"), "{p:?}");
        assert!(decides(&p, "GET /v1/documents/42/admin"), "{p:?}");
    }

    #[test]
    fn a_parameter_in_the_middle_and_any_stay_one_segment() {
        let p = policy("GET /v1/{user}/files=read;ANY /v1/items=read", "read");
        assert!(decides(&p, "GET /v1/alice/files"), "{p:?}");
        assert!(!decides(&p, "GET /v1/alice/x/files"), "{p:?}");
        assert!(decides(&p, "POST /v1/items"), "{p:?}");
        assert!(decides(&p, "DELETE /v1/items"), "{p:?}");
        assert!(!decides(&p, "GET /x/v1/items"), "{p:?}");
    }

    #[test]
    fn a_greedy_parameter_reaches_below_itself_by_design() {
        let p = policy("GET /v1/files/{path+}=read", "read");
        assert!(decides(&p, "GET /v1/files/a"), "{p:?}");
        assert!(decides(&p, "GET /v1/files/a/b/c"), "{p:?}");
        assert!(!decides(&p, "GET /v1/files"), "{p:?}");
    }

    #[test]
    fn allowed_routes_below_a_parameter_stay_allowed() {
        let p = policy(
            "GET /v1/documents/{id}=read;GET /v1/documents/{id}/versions=read",
            "read",
        );
        assert!(decides(&p, "GET /v1/documents/42"), "{p:?}");
        assert!(decides(&p, "GET /v1/documents/42/versions"), "{p:?}");
    }

    #[test]
    fn a_refused_route_is_denied_explicitly_only_when_an_allowed_pattern_reaches_it() {
        let p = policy("GET /v1/whoami=read;POST /v1/documents=write", "read");
        assert_eq!(p.statement.len(), 1, "literal routes need no Deny: {p:?}");
        let p = policy("GET /v1/{name}=read;GET /v1/admin/x=admin", "read");
        assert_eq!(p.statement[1].effect, "Deny", "{p:?}");
        assert!(!decides(&p, "GET /v1/admin/x"), "{p:?}");
        assert!(decides(&p, "GET /v1/admin"), "{p:?}");
    }

    #[test]
    fn a_method_arn_yields_its_stage_prefix_and_route() {
        let arn = MethodArn::parse(
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/v1/documents/42",
        )
        .unwrap();
        assert_eq!(arn.stage_prefix(), STAGE);
        assert_eq!(arn.route(), "GET /v1/documents/42");
        let root = MethodArn::parse("arn:aws-cn:execute-api:cn-north-1:1:api/dev/GET/").unwrap();
        assert_eq!(
            root.stage_prefix(),
            "arn:aws-cn:execute-api:cn-north-1:1:api/dev/"
        );
        assert_eq!(root.route(), "GET /");
    }

    #[test]
    fn malformed_or_wildcard_method_arns_are_rejected() {
        for bad in [
            "",
            "arn:aws:execute-api:us-east-1:1:api/prod",
            "arn:aws:lambda:us-east-1:1:api/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:*/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:api/*/GET/x",
            "arn:aws:execute-api:us-east-1::api/prod/GET/x",
            "arn:aws:execute-api:*:1:api/prod/GET/x",
            "nonsense",
        ] {
            assert_eq!(MethodArn::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_policy_allows_exactly_the_routes_whose_scopes_the_token_holds() {
        let r = routes(
            "GET /v1/whoami=read;POST /v1/documents=write documents:write;\
             GET /v1/public=;GET /v1/documents/{id}=read documents:read",
        );
        let policy = PolicyDocument::for_scopes(&r, STAGE, &Scopes::parse("read").unwrap());
        assert_eq!(policy.statement.len(), 1);
        assert_eq!(policy.statement[0].effect, "Allow");
        let mut allowed = policy.statement[0].resource.clone();
        allowed.sort();
        assert_eq!(
            allowed,
            vec![
                format!("{STAGE}GET/v1/public"),
                format!("{STAGE}GET/v1/whoami")
            ]
        );
    }

    #[test]
    fn a_token_that_may_call_nothing_gets_an_explicit_deny_of_the_stage() {
        let r = routes("POST /v1/documents=write");
        let policy = PolicyDocument::for_scopes(&r, STAGE, &Scopes::parse("read").unwrap());
        assert!(!policy.allows_anything());
        assert_eq!(policy.statement[0].effect, "Deny");
        assert_eq!(policy.statement[0].resource, vec![format!("{STAGE}*/*")]);
    }

    #[test]
    fn the_policy_serializes_as_api_gateway_expects() {
        let r = routes("GET /v1/whoami=read");
        let policy = PolicyDocument::for_scopes(&r, STAGE, &Scopes::parse("read").unwrap());
        assert_eq!(
            serde_json::to_value(&policy).unwrap(),
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": [format!("{STAGE}GET/v1/whoami")],
                }],
            })
        );
    }

    #[test]
    fn only_a_bearer_scheme_carries_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
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
