//! The HTTP adapter: lambda_http requests in, JSON responses out.
//!
//! Routing, body limits, content types, headers and the one log line per
//! request live here; the logic modules never see HTTP. Every Lambda and the
//! local server call [`handle`], each serving its own routes: [`auth`] holds
//! the `/auth/*` routes, [`oauth`] the OAuth2 ones, [`admin`] the
//! management API's, [`console`] the web console's pages, [`credential`]
//! reads the `Authorization` header for all of them.

pub mod admin;
mod auth;
pub mod body;
pub mod console;
pub mod credential;
pub mod error;
mod oauth;
pub mod response;

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt;
use lambda_http::http::header::{CONTENT_TYPE, LOCATION};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::SecretString;
use serde_json::Value;

use crate::domain::token::TokenError;
use crate::domain::{App, Error};
use crate::http::body::Fields;
use crate::http::error::ApiError;
use crate::telemetry::{Audit, RequestLine, metrics};

pub use credential::{Credential, bearer};

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
    /// The management API, `/admin/v1/*` (see [`admin::Endpoint`]).
    Admin,
    /// `GET|HEAD /console/*`: the web console's pages (see [`console`]).
    Console,
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
        Route::Admin,
        Route::Console,
    ];
    /// The routes of the `login` Lambda: getting tokens.
    pub const LOGIN: &'static [Route] = &[Route::Login, Route::Token, Route::Metadata];
    /// The routes of the `verify` Lambda: checking tokens.
    pub const VERIFY: &'static [Route] = &[Route::Verify, Route::Introspect];
    /// The routes of the `revoke` Lambda: ending tokens.
    pub const REVOKE: &'static [Route] = &[Route::Revoke, Route::OAuthRevoke];
    /// The routes of the `admin` Lambda: managing keys, and the console that does it.
    pub const ADMIN: &'static [Route] = &[Route::Admin, Route::Console];

    /// The path, also the log's `route`; for [`Route::Admin`], the prefix
    /// of its endpoints; for [`Route::Console`], of its pages.
    pub fn path(self) -> &'static str {
        match self {
            Self::Login => "/auth/login",
            Self::Verify => "/auth/verify",
            Self::Revoke => "/auth/revoke",
            Self::Token => "/oauth2/token",
            Self::Introspect => "/oauth2/introspect",
            Self::OAuthRevoke => "/oauth2/revoke",
            Self::Metadata => "/.well-known/oauth-authorization-server",
            Self::Admin => admin::PREFIX,
            Self::Console => console::PREFIX,
        }
    }

    /// Every path the route serves, as documented: its endpoints' templates
    /// for [`Route::Admin`], its one path for the others.
    pub fn templates(self) -> &'static [&'static str] {
        match self {
            Self::Admin => admin::Endpoint::TEMPLATES,
            Self::Login => &["/auth/login"],
            Self::Verify => &["/auth/verify"],
            Self::Revoke => &["/auth/revoke"],
            Self::Token => &["/oauth2/token"],
            Self::Introspect => &["/oauth2/introspect"],
            Self::OAuthRevoke => &["/oauth2/revoke"],
            Self::Metadata => &["/.well-known/oauth-authorization-server"],
            Self::Console => &["/console", "/console/", "/console/{asset}"],
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Self::Verify => "GET, POST",
            Self::Metadata => "GET",
            Self::Console => "GET, HEAD",
            _ => "POST",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        match self {
            // Each endpoint checks its own methods.
            Self::Admin => true,
            Self::Verify => method == Method::GET || method == Method::POST,
            Self::Metadata => method == Method::GET,
            Self::Console => method == Method::GET || method == Method::HEAD,
            _ => method == Method::POST,
        }
    }

    /// The route a path names. Matching the end of the path lets the same
    /// binary run behind an API Gateway stage or a function URL prefix.
    fn of(path: &str) -> Option<Self> {
        let trimmed = path.trim_end_matches('/');
        let fixed = Self::ALL
            .iter()
            .copied()
            .find(|r| !matches!(r, Self::Admin | Self::Console) && trimmed.ends_with(r.path()));
        fixed
            .or_else(|| admin::Endpoint::of(path).map(|_| Self::Admin))
            .or_else(|| console::Page::of(path).map(|_| Self::Console))
    }

    /// What the log's `route` says of a request to `path` on this route.
    fn label(self, path: &str) -> &'static str {
        match self {
            Self::Admin => admin::Endpoint::of(path).map_or(admin::PREFIX, |e| e.template()),
            other => other.path(),
        }
    }
}

/// A success: its status, body and, for a creation, where the new thing is.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

impl Reply {
    fn into_response(self) -> Response<Body> {
        let mut response = response::json(self.status, &self.body);
        // A path that routed is visible ASCII; should it not be, the body
        // still names the new key.
        if let Some(location) = self.location.as_deref()
            && let Ok(value) = HeaderValue::from_str(location)
        {
            response.headers_mut().insert(LOCATION, value);
        }
        response
    }
}

impl From<Value> for Reply {
    fn from(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            location: None,
        }
    }
}

/// Handles one request for a function serving `routes`. Never fails: every
/// outcome is a JSON response (or a console page), and each request writes
/// one log line.
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
    let credential = Credential::of(request.headers());
    let mut audit = Audit {
        request_id: Some(request_id.clone()),
        ..Audit::default()
    };
    let work = async {
        match route {
            None => Err(ApiError::NotFound),
            Some(route) if !route.accepts(request.method()) => {
                Err(ApiError::MethodNotAllowed(route.allow()))
            }
            Some(Route::Console) => {
                console::answer(request.uri().path(), request.method(), request.headers())
            }
            // A panic is a bug, answered like any other 500: the process, its
            // other requests and this request's log line all survive it. Nothing
            // the future held is used after it unwound, hence AssertUnwindSafe.
            Some(route) => AssertUnwindSafe(dispatch(app, route, &request, credential, &mut audit))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(Error::internal(Panicked).into()))
                .map(Reply::into_response),
        }
    };
    let (result, dynamodb_calls) = metrics::counting_calls(work).await;
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(e) => (
            response::error(&e, route == Some(Route::Verify), credential, &request_id),
            Some(e),
        ),
    };
    if route == Some(Route::Console) {
        console::secure(response.headers_mut(), &app.admin);
    }
    let error = error.as_ref();
    let label = route.map_or("unknown", |r| r.label(request.uri().path()));
    RequestLine {
        function,
        kind: None,
        route: label,
        metric_route: label,
        method: Some(request.method().as_str()),
        status: Some(response.status().as_u16()),
        outcome: if error.is_none() { "ok" } else { "error" },
        error: error.map(ApiError::code),
        detail: error
            .filter(|e| e.status() >= 500)
            .map(ApiError::source_chain),
        allowed_routes: None,
        audit: &audit,
        latency: started.elapsed(),
        dynamodb_calls,
        request_id: &request_id,
    }
    .emit("request");
    response
}

/// What a panic turns into; its payload is never read, as it may hold request data.
#[derive(Debug, thiserror::Error)]
#[error("the handler panicked")]
struct Panicked;

async fn dispatch(
    app: &App,
    route: Route,
    request: &Request,
    credential: Credential<'_>,
    audit: &mut Audit,
) -> Result<Reply, ApiError> {
    if route == Route::Admin {
        return admin::handle(app, request, credential, audit).await;
    }
    let fields = if request.method() == Method::GET {
        Fields::Empty
    } else {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Fields::parse(content_type, request.body().as_ref())?
    };
    let body = match route {
        Route::Login => auth::login(app, &fields, audit).await,
        Route::Verify => {
            let query = Fields::query(request.uri().query().unwrap_or(""))?;
            auth::verify(app, bearer_of(credential)?, &fields, &query, audit).await
        }
        Route::Revoke => auth::revoke(app, bearer_of(credential)?, &fields, audit).await,
        Route::Token => oauth::token(app, basic_of(credential), &fields, audit).await,
        Route::Introspect => oauth::introspect(app, basic_of(credential), &fields, audit).await,
        Route::OAuthRevoke => oauth::revoke(app, basic_of(credential), &fields, audit).await,
        Route::Metadata => Ok(oauth::metadata(&app.policy)),
        Route::Admin | Route::Console => Err(ApiError::NotFound),
    };
    body.map(Reply::from)
}

/// The bearer token, if any; other schemes count as none, but an unreadable
/// header is a malformed token.
fn bearer_of(credential: Credential<'_>) -> Result<Option<SecretString>, ApiError> {
    match credential {
        Credential::Bearer(t) => Ok(Some(SecretString::from(t))),
        Credential::None | Credential::Basic(_) | Credential::Other => Ok(None),
        Credential::Unusable => Err(Error::InvalidToken(TokenError::Malformed).into()),
    }
}

/// The Basic credentials, base64-encoded as sent.
fn basic_of(credential: Credential<'_>) -> Option<&str> {
    match credential {
        Credential::Basic(b) => Some(b),
        _ => None,
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;
    use crate::domain::api_key::ApiKey;
    use crate::domain::testing::{DownStore, Fixture, Outage};
    use crate::telemetry::tests::Captured;

    /// An app whose store has a bug: every read panics, with the key id in
    /// the message.
    fn app() -> App {
        Fixture::new().on(DownStore(Outage::Panics))
    }

    async fn login(app: &App, api_key: &str) -> (StatusCode, Value) {
        let body = json!({ "api_key": api_key }).to_string();
        let request = lambda_http::http::Request::builder()
            .method(Method::POST)
            .uri("/auth/login")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::Text(body))
            .unwrap();
        let response = handle(app, "test", Route::ALL, request).await;
        let Body::Text(text) = response.body() else {
            panic!("not text: {:?}", response.body())
        };
        (response.status(), serde_json::from_str(text).unwrap())
    }

    #[tokio::test]
    async fn a_panic_is_a_500_server_error_and_the_next_request_is_answered() {
        // As in the integration harness: a second live dispatcher keeps other
        // threads, which have no subscriber, from marking the callsite "never".
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let logs = Captured::default();
        let writer = logs.clone();
        let _guard =
            tracing::subscriber::set_default(crate::telemetry::subscriber(move || writer.clone()));

        let app = app();
        let key = ApiKey::generate().unwrap();
        let (status, body) = login(&app, key.expose().expose_secret()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "server_error");
        let mut fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["error", "error_description", "request_id"]);
        assert!(!body.to_string().contains(key.id().as_str()), "{body}");

        let (status, body) = login(&app, "bauth_not-a-key").await;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_client"))
        );

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
        assert_eq!(requests.len(), 2, "{text}");
        assert_eq!(requests[0]["status"], 500);
        assert_eq!(requests[0]["outcome"], "error");
        assert_eq!(requests[0]["error"], "server_error");
        assert_eq!(requests[1]["status"], 401);
        assert!(
            !text.contains("corrupt record"),
            "the panic message stays out of the log: {text}"
        );
    }
}
