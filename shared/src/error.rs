//! The one error type at the HTTP boundary and its one status mapping.
//!
//! Logic returns [`ApiError`]; [`crate::http`] turns it into a response with
//! [`ApiError::status`], [`ApiError::code`] and [`ApiError::description`]. The
//! source of a backend failure is kept for the log line and never reaches the
//! client.

use std::error::Error as StdError;

use thiserror::Error;

use crate::token::TokenError;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Malformed body, missing or mistyped field, bad session id (400).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A scope the key lacks, or a malformed scope (400).
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// The API key is unknown, malformed, revoked or expired (401). One
    /// message for all, so callers cannot probe which.
    #[error("invalid client")]
    InvalidClient,
    /// The bearer token is missing or not valid (401).
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    /// A valid token lacks scopes the caller required (403).
    #[error("insufficient scope: needs {0}")]
    InsufficientScope(String),
    /// Unknown path (404).
    #[error("not found")]
    NotFound,
    /// OAuth2 token request with a grant type other than `client_credentials` (400).
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// Known path, wrong method (405); holds the `Allow` header value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Login asked for another scope than the session's live token holds (409).
    #[error("session conflict")]
    SessionConflict,
    /// Login would open a session past `MAX_SESSIONS_PER_KEY` (429); holds
    /// the seconds until the oldest live session expires (`Retry-After`).
    #[error("too many sessions")]
    TooManySessions(u64),
    /// Body over the size cap (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// Content type other than JSON or form (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A backend (DynamoDB, Secrets Manager) failed or is throttled after retries (503).
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A bug or a broken deployment (500); the client only sees the request id.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) | Self::InvalidScope(_) | Self::UnsupportedGrantType => 400,
            Self::InvalidClient | Self::InvalidToken(_) => 401,
            Self::InsufficientScope(_) => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::SessionConflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManySessions(_) => 429,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge | Self::UnsupportedMediaType => {
                "invalid_request"
            }
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidClient => "invalid_client",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::SessionConflict => "session_conflict",
            Self::TooManySessions(_) => "too_many_sessions",
            Self::Internal(_) => "server_error",
            Self::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// The human `error_description`: safe to show, never internal detail.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidRequest(m) | Self::InvalidScope(m) => m.clone(),
            Self::InvalidClient => "the API key is not valid".into(),
            Self::InvalidToken(e) => e.to_string(),
            Self::InsufficientScope(s) => format!("the token lacks the scope: {s}"),
            Self::NotFound => "no such route".into(),
            Self::UnsupportedGrantType => "the only grant type is client_credentials".into(),
            Self::MethodNotAllowed(allow) => format!("use {allow}"),
            Self::SessionConflict => {
                "this session holds a live token with another scope; use another session_id".into()
            }
            Self::TooManySessions(_) => {
                "the API key holds as many live sessions as it may; reuse a session_id, or retry after Retry-After".into()
            }
            Self::PayloadTooLarge => "the body exceeds 16 KiB".into(),
            Self::UnsupportedMediaType => {
                "send application/json or application/x-www-form-urlencoded".into()
            }
            Self::Internal(_) => "internal error; quote the request_id".into(),
            Self::Unavailable(_) => "a backend is unavailable; retry shortly".into(),
        }
    }

    /// The error and its sources, for the log line of a 5xx. Store, SDK and
    /// key-source errors name operations and endpoints, never secrets.
    pub fn source_chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    /// Wraps a backend failure as a 503.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unavailable(source.into())
    }

    /// Wraps a bug or a broken deployment as a 500.
    pub fn internal(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Internal(source.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_the_design_table() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::InvalidRequest("x".into()), 400, "invalid_request"),
            (ApiError::InvalidScope("x".into()), 400, "invalid_scope"),
            (ApiError::InvalidClient, 401, "invalid_client"),
            (
                ApiError::InvalidToken(TokenError::Missing),
                401,
                "invalid_token",
            ),
            (
                ApiError::InsufficientScope("write".into()),
                403,
                "insufficient_scope",
            ),
            (
                ApiError::UnsupportedGrantType,
                400,
                "unsupported_grant_type",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (
                ApiError::MethodNotAllowed("POST"),
                405,
                "method_not_allowed",
            ),
            (ApiError::SessionConflict, 409, "session_conflict"),
            (ApiError::TooManySessions(60), 429, "too_many_sessions"),
            (ApiError::PayloadTooLarge, 413, "invalid_request"),
            (ApiError::UnsupportedMediaType, 415, "invalid_request"),
            (ApiError::internal("boom"), 500, "server_error"),
            (
                ApiError::unavailable("down"),
                503,
                "temporarily_unavailable",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status(), err.code()), (status, code), "{err:?}");
        }
    }

    #[test]
    fn backend_detail_never_reaches_the_description() {
        let err = ApiError::unavailable("dynamodb endpoint 10.0.0.1 refused");
        assert!(!err.description().contains("10.0.0.1"));
        let err = ApiError::internal("secret value was {\"key\": \"abc\"}");
        assert!(!err.description().contains("abc"));
    }
}
