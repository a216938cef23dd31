//! The HTTP adapter: lambda_http requests in, JSON responses out.
//!
//! Routing, body limits, content types, headers and the one log line per
//! request live here; the logic modules never see HTTP. Every Lambda and the
//! local server call [`handle`], each serving its own routes.

use std::time::Instant;

use lambda_http::http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::login::{self, LoginRequest};
use crate::request::Fields;
use crate::revoke::{self, RevokeRequest};
use crate::telemetry::Audit;
use crate::token::TokenError;
use crate::verify;

/// One of the service's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /auth/login`.
    Login,
    /// `GET|POST /auth/verify`.
    Verify,
    /// `POST /auth/revoke`.
    Revoke,
}

impl Route {
    /// Every route, for a server that serves them all.
    pub const ALL: &'static [Route] = &[Route::Login, Route::Verify, Route::Revoke];

    /// The path, also the log's `route`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Login => "/auth/login",
            Self::Verify => "/auth/verify",
            Self::Revoke => "/auth/revoke",
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Self::Verify => "GET, POST",
            Self::Login | Self::Revoke => "POST",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        method == Method::POST || (self == Self::Verify && method == Method::GET)
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
    let mut audit = Audit::default();
    let result = match route {
        None => Err(ApiError::NotFound),
        Some(route) if !route.accepts(request.method()) => {
            Err(ApiError::MethodNotAllowed(route.allow()))
        }
        Some(route) => dispatch(app, route, &request, &mut audit).await,
    };
    let response = match &result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => error_response(e, route, &request_id),
    };
    let error = result.as_ref().err();
    let detail = error.filter(|e| e.status() >= 500).map(source_chain);
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
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let bearer = bearer_token(request)?;
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
        Route::Login => {
            let api_key = fields
                .text("api_key")?
                .ok_or_else(|| ApiError::InvalidRequest("field api_key is required".into()))?;
            let issued = login::login(
                app,
                LoginRequest {
                    api_key: SecretString::from(api_key),
                    session_id: fields.text("session_id")?.map(str::to_owned),
                    scope: fields.text("scope")?.map(str::to_owned),
                },
                audit,
            )
            .await?;
            Ok(json!({
                "access_token": issued.access_token.expose_secret(),
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "scope": issued.scope,
                "session_id": issued.session_id,
            }))
        }
        Route::Verify => {
            let token = one_token(bearer, fields.text("token")?)?;
            let query = Fields::form(request.uri().query().unwrap_or("").as_bytes())?;
            let scope = match (query.text("scope")?, fields.text("scope")?) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::InvalidRequest(
                        "send scope in the query or the body, not both".into(),
                    ));
                }
                (q, b) => q.or(b),
            };
            let v = verify::verify(app, token.as_ref().map(|t| t.expose_secret()), scope, audit)
                .await?;
            let c = &v.claims;
            Ok(json!({
                "active": true,
                "sub": c.sub,
                "session_id": c.sid,
                "scope": c.scope,
                "jti": c.jti,
                "iat": c.iat,
                "exp": c.exp,
                "expires_in": v.expires_in,
            }))
        }
        Route::Revoke => {
            let done = revoke::revoke(app, revoke_request(bearer, &fields)?, audit).await?;
            let mut body = json!({"revoked": true, "sessions_revoked": done.sessions});
            if done.api_key {
                body["api_key_revoked"] = json!(true);
            }
            Ok(body)
        }
    }
}

fn revoke_request(
    bearer: Option<SecretString>,
    fields: &Fields,
) -> Result<RevokeRequest, ApiError> {
    let invalid = |m: &str| Err(ApiError::InvalidRequest(m.into()));
    let api_key = fields.text("api_key")?;
    let token = one_token(bearer, fields.text("token")?)?;
    let (all_sessions, revoke_key) = (fields.flag("all_sessions")?, fields.flag("revoke_api_key")?);
    let session_id = fields.text("session_id")?.map(str::to_owned);
    match (token, api_key) {
        (Some(_), Some(_)) => invalid("send a token or an api_key, not both"),
        (None, None) => invalid("send a bearer token, a token field or an api_key"),
        (Some(token), None) => {
            if fields.has_any(&["session_id", "all_sessions", "revoke_api_key"]) {
                return invalid("session_id, all_sessions and revoke_api_key go with api_key");
            }
            Ok(RevokeRequest::Token(token))
        }
        (None, Some(key)) => {
            let api_key = SecretString::from(key);
            match (revoke_key, all_sessions, session_id) {
                (true, false, None) => Ok(RevokeRequest::Key { api_key }),
                (false, true, None) => Ok(RevokeRequest::AllSessions { api_key }),
                (false, false, session_id) => Ok(RevokeRequest::Session {
                    api_key,
                    session_id,
                }),
                _ => invalid("choose one of session_id, all_sessions and revoke_api_key"),
            }
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

/// A `Bearer` credential from `Authorization`; other schemes count as none.
fn bearer_token(request: &Request) -> Result<Option<SecretString>, ApiError> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken(TokenError::Malformed))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(SecretString::from(token.trim().to_owned())))
        }
        _ => Ok(None),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Tokens must never sit in a cache; errors need not either.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_response(error: &ApiError, route: Option<Route>, request_id: &str) -> Response<Body> {
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
    let header =
        |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("Bearer"));
    match error {
        ApiError::InvalidToken(_) => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        ApiError::InsufficientScope(scope) => {
            headers.insert(
                WWW_AUTHENTICATE,
                header(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
                )),
            );
        }
        ApiError::MethodNotAllowed(allow) => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Unavailable(_) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        _ => {}
    }
    response
}

/// The error and its sources, for the log line of a 5xx. SDK and store
/// errors name operations and endpoints, never secrets.
fn source_chain(error: &ApiError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
