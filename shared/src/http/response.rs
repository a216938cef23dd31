//! Response bodies and headers: what a success and an error look like on
//! the wire, for every route.

use lambda_http::http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::domain::Error;
use crate::domain::login::Issued;
use crate::domain::revoke::Revoked;
use crate::domain::verify::Verified;
use crate::http::credential::Credential;
use crate::http::error::{ApiError, RETRY_AFTER_SECONDS};

/// The body of a token response, for `/auth/login` and `/oauth2/token` alike.
pub fn issued_body(issued: &Issued) -> Value {
    json!({
        "access_token": issued.access_token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
        "session_id": issued.session_id,
    })
}

/// The claims of a valid token, as `/auth/verify` shows them.
pub fn verified_body(v: &Verified) -> Map<String, Value> {
    let c = &v.claims;
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("sub".into(), json!(c.sub));
    body.insert("session_id".into(), json!(c.sid));
    body.insert("scope".into(), json!(c.scope));
    body.insert("jti".into(), json!(c.jti));
    body.insert("iat".into(), json!(c.iat));
    body.insert("exp".into(), json!(c.exp));
    body.insert("expires_in".into(), json!(v.expires_in));
    if let Some(owner) = &v.owner {
        body.insert("owner".into(), json!(owner));
    }
    if let Some(meta) = &v.meta {
        body.insert("meta".into(), json!(meta));
    }
    body
}

/// The body of a revocation, for `/auth/revoke` and `/oauth2/revoke` alike.
pub fn revoked_body(done: &Revoked) -> Value {
    let mut body = Map::new();
    body.insert("revoked".into(), json!(true));
    body.insert("sessions_revoked".into(), json!(done.sessions));
    if done.api_key {
        body.insert("api_key_revoked".into(), json!(true));
    }
    Value::Object(body)
}

/// A JSON response that no cache keeps.
pub fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Tokens must never sit in a cache (RFC 6749 §5.1); errors need not either.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The JSON error body of `error` with the headers its status calls for.
/// `verify` answers an invalid token with `"active": false` as well; a client
/// that used Basic gets a Basic challenge.
pub fn error(
    error: &ApiError,
    verify: bool,
    credential: Credential<'_>,
    request_id: &str,
) -> Response<Body> {
    let mut body = Map::new();
    if verify && matches!(error, ApiError::Domain(Error::InvalidToken(_))) {
        body.insert("active".into(), json!(false));
    }
    body.insert("error".into(), json!(error.code()));
    body.insert("error_description".into(), json!(error.description()));
    body.insert("request_id".into(), json!(request_id));
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, &Value::Object(body));
    let headers = response.headers_mut();
    match error {
        ApiError::Domain(Error::InvalidToken(_)) => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        ApiError::Domain(Error::InsufficientScope(scope)) => {
            // Scope tokens are printable ASCII without quotes or backslashes, so this is a valid header.
            let value = HeaderValue::from_str(&format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ))
            .unwrap_or(HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\"",
            ));
            headers.insert(WWW_AUTHENTICATE, value);
        }
        ApiError::Domain(Error::InvalidClient) if matches!(credential, Credential::Basic(_)) => {
            // RFC 6749 §5.2: a client that used Basic gets a Basic challenge.
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
        }
        ApiError::MethodNotAllowed(allow) => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Domain(Error::Unavailable(_)) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        ApiError::Domain(Error::TooManySessions(seconds)) => {
            headers.insert(RETRY_AFTER, HeaderValue::from((*seconds).max(1)));
        }
        _ => {}
    }
    response
}
