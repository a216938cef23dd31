//! The HTTP adapter: lambda_http requests in, JSON responses out.
//!
//! Routing, body limits, content types, headers and the one log line per
//! request live here; the logic modules never see HTTP. Every Lambda and the
//! local server call [`handle`], each serving its own routes: [`auth`] holds
//! the `/auth/*` routes, [`oauth`] the OAuth2 ones.

mod auth;
mod oauth;

use std::time::Instant;

use lambda_http::http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::request::Fields;
use crate::telemetry::Audit;
use crate::token::TokenError;

/// One of the service's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /auth/login`.
    Login,
    /// `GET|POST /auth/verify`.
    Verify,
    /// `POST /auth/revoke`.
    Revoke,
    /// `POST /oauth2/token` (RFC 6749 §4.4, client credentials).
    Token,
    /// `POST /oauth2/introspect` (RFC 7662).
    Introspect,
    /// `POST /oauth2/revoke` (RFC 7009).
    OAuthRevoke,
    /// `GET /.well-known/oauth-authorization-server` (RFC 8414).
    Metadata,
}

impl Route {
    /// Every route, for a server that serves them all.
    pub const ALL: &'static [Route] = &[
        Route::Login,
        Route::Verify,
        Route::Revoke,
        Route::Token,
        Route::Introspect,
        Route::OAuthRevoke,
        Route::Metadata,
    ];
    /// The routes of the `login` Lambda: getting tokens.
    pub const LOGIN: &'static [Route] = &[Route::Login, Route::Token, Route::Metadata];
    /// The routes of the `verify` Lambda: checking tokens.
    pub const VERIFY: &'static [Route] = &[Route::Verify, Route::Introspect];
    /// The routes of the `revoke` Lambda: ending tokens.
    pub const REVOKE: &'static [Route] = &[Route::Revoke, Route::OAuthRevoke];

    /// The path, also the log's `route`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Login => "/auth/login",
            Self::Verify => "/auth/verify",
            Self::Revoke => "/auth/revoke",
            Self::Token => "/oauth2/token",
            Self::Introspect => "/oauth2/introspect",
            Self::OAuthRevoke => "/oauth2/revoke",
            Self::Metadata => "/.well-known/oauth-authorization-server",
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Self::Verify => "GET, POST",
            Self::Metadata => "GET",
            _ => "POST",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        match self {
            Self::Verify => method == Method::GET || method == Method::POST,
            Self::Metadata => method == Method::GET,
            _ => method == Method::POST,
        }
    }

    /// The route a path names. Matching the end of the path lets the same
    /// binary run behind an API Gateway stage or a function URL prefix.
    fn of(path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        Self::ALL.iter().copied().find(|r| path.ends_with(r.path()))
    }
}

/// Handles one request for a function serving `routes`. Never fails: every
/// outcome is a JSON response, and each request writes one log line.
pub async fn handle(
    app: &App,
    function: &str,
    routes: &[Route],
    request: Request,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = Route::of(request.uri().path()).filter(|r| routes.contains(r));
    let credential = Credential::of(&request);
    let mut audit = Audit::default();
    let result = match route {
        None => Err(ApiError::NotFound),
        Some(route) if !route.accepts(request.method()) => {
            Err(ApiError::MethodNotAllowed(route.allow()))
        }
        Some(route) => dispatch(app, route, &request, &credential, &mut audit).await,
    };
    let response = match &result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => error_response(e, route, &credential, &request_id),
    };
    let error = result.as_ref().err();
    let detail = error
        .filter(|e| e.status() >= 500)
        .map(ApiError::source_chain);
    tracing::info!(
        function,
        route = route.map_or("unknown", Route::path),
        method = %request.method(),
        status = response.status().as_u16(),
        outcome = if error.is_none() { "ok" } else { "error" },
        error = error.map(ApiError::code),
        detail,
        key_id = audit.key_id,
        session_id = audit.session_id,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id,
        "request"
    );
    response
}

async fn dispatch(
    app: &App,
    route: Route,
    request: &Request,
    credential: &Credential,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let fields = if request.method() == Method::GET {
        Fields::Empty
    } else {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Fields::parse(content_type, request.body().as_ref())?
    };
    match route {
        Route::Login => auth::login(app, &fields, audit).await,
        Route::Verify => {
            let query = Fields::form(request.uri().query().unwrap_or("").as_bytes())?;
            auth::verify(app, credential.bearer()?, &fields, &query, audit).await
        }
        Route::Revoke => auth::revoke(app, credential.bearer()?, &fields, audit).await,
        Route::Token => oauth::token(app, credential.basic(), &fields, audit).await,
        Route::Introspect => oauth::introspect(app, credential.basic(), &fields, audit).await,
        Route::OAuthRevoke => oauth::revoke(app, credential.basic(), &fields, audit).await,
        Route::Metadata => Ok(oauth::metadata(&app.policy)),
    }
}

/// What the `Authorization` header carries.
enum Credential {
    None,
    Bearer(SecretString),
    Basic(String),
    /// Present but not text, or a scheme we do not know.
    Unusable,
}

impl Credential {
    fn of(request: &Request) -> Self {
        let Some(value) = request.headers().get(AUTHORIZATION) else {
            return Self::None;
        };
        let Ok(value) = value.to_str() else {
            return Self::Unusable;
        };
        match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                Self::Bearer(SecretString::from(rest.trim().to_owned()))
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                Self::Basic(rest.trim().to_owned())
            }
            _ => Self::Unusable,
        }
    }

    /// The bearer token, if any; other schemes count as none, but a header
    /// that is not even text is a malformed token.
    fn bearer(&self) -> Result<Option<SecretString>, ApiError> {
        match self {
            Self::Bearer(t) => Ok(Some(t.clone())),
            Self::None | Self::Basic(_) => Ok(None),
            Self::Unusable => Err(ApiError::InvalidToken(TokenError::Malformed)),
        }
    }

    /// The Basic credentials, base64-encoded as sent.
    fn basic(&self) -> Option<&str> {
        match self {
            Self::Basic(b) => Some(b),
            _ => None,
        }
    }
}

/// The token from the `Authorization` header or the body; both at once is an error (RFC 6750 §2).
fn one_token(
    bearer: Option<SecretString>,
    field: Option<&str>,
) -> Result<Option<SecretString>, ApiError> {
    match (bearer, field) {
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
            "send the token in the Authorization header or the body, not both".into(),
        )),
        (Some(t), None) => Ok(Some(t)),
        (None, f) => Ok(f.map(SecretString::from)),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Tokens must never sit in a cache (RFC 6749 §5.1); errors need not either.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn error_response(
    error: &ApiError,
    route: Option<Route>,
    credential: &Credential,
    request_id: &str,
) -> Response<Body> {
    let mut body = json!({
        "error": error.code(),
        "error_description": error.description(),
        "request_id": request_id,
    });
    if route == Some(Route::Verify) && matches!(error, ApiError::InvalidToken(_)) {
        body["active"] = json!(false);
    }
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    match error {
        ApiError::InvalidToken(_) => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        ApiError::InsufficientScope(scope) => {
            // Scope tokens are printable ASCII without quotes or backslashes, so this is a valid header.
            let value = HeaderValue::from_str(&format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ))
            .unwrap_or(HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\"",
            ));
            headers.insert(WWW_AUTHENTICATE, value);
        }
        ApiError::InvalidClient if matches!(credential, Credential::Basic(_)) => {
            // RFC 6749 §5.2: a client that used Basic gets a Basic challenge.
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
        }
        ApiError::MethodNotAllowed(allow) => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Unavailable(_) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        ApiError::TooManySessions(seconds) => {
            headers.insert(RETRY_AFTER, HeaderValue::from((*seconds).max(1)));
        }
        _ => {}
    }
    response
}
