//! The one error type at the HTTP boundary and its one status mapping.
//!
//! A domain [`Error`] is wrapped as it is; the other variants are the
//! adapter's own (routing, body limits, content types, grant types). Only
//! here do failures become statuses, codes and descriptions; the source of a
//! backend failure is kept for the log line and never reaches the client.

use thiserror::Error;

use crate::domain::Error;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// What the use case refused or failed with.
    #[error(transparent)]
    Domain(#[from] Error),
    /// Malformed body, missing or mistyped field (400).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Unknown path (404).
    #[error("not found")]
    NotFound,
    /// OAuth2 token request with a grant type other than `client_credentials` (400).
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// Known path, wrong method (405); holds the `Allow` header value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Body over the size cap (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// A content type the route does not take (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
}

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) | Self::UnsupportedGrantType => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Domain(e) => match e {
                Error::InvalidRequest(_) | Error::InvalidScope(_) | Error::InvalidGrant => 400,
                Error::InvalidClient | Error::InvalidToken(_) => 401,
                Error::InsufficientScope(_) => 403,
                Error::SessionConflict | Error::KeyRevoked | Error::TooManyKeys => 409,
                Error::NotFound => 404,
                Error::OwnerMismatch => 403,
                Error::TooManySessions(_) => 429,
                Error::Internal(_) => 500,
                Error::Unavailable(_) => 503,
            },
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge | Self::UnsupportedMediaType => {
                "invalid_request"
            }
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Domain(e) => e.code(),
        }
    }

    /// The human `error_description`: safe to show, never internal detail.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidRequest(m) => m.clone(),
            Self::NotFound => "no such route".into(),
            Self::UnsupportedGrantType => "the only grant type is client_credentials".into(),
            Self::MethodNotAllowed(allow) => format!("use {allow}"),
            Self::PayloadTooLarge => "the body exceeds 16 KiB".into(),
            Self::UnsupportedMediaType => "send application/json (a PATCH also takes \
                 application/merge-patch+json), or application/x-www-form-urlencoded where the \
                 route takes a form"
                .into(),
            Self::Domain(e) => match e {
                Error::InvalidRequest(m) | Error::InvalidScope(m) => m.clone(),
                Error::InvalidClient => "the API key is not valid".into(),
                Error::InvalidToken(e) => e.to_string(),
                Error::InsufficientScope(s) => format!("the token lacks the scope: {s}"),
                Error::SessionConflict => {
                    "this session holds a live token with another scope; use another session_id"
                        .into()
                }
                Error::TooManySessions(_) => {
                    "the API key holds as many live sessions as it may; reuse a session_id, or retry after Retry-After".into()
                }
                Error::NotFound => "no such key".into(),
                Error::OwnerMismatch => "a key must belong to the caller's own owner".into(),
                Error::KeyRevoked => "the key is revoked; revoked keys do not change".into(),
                Error::InvalidGrant => {
                    "this portal link has been used or has expired; ask for a new one".into()
                }
                Error::TooManyKeys => {
                    "this account holds as many live keys as it may; revoke one first".into()
                }
                Error::Internal(_) => "internal error; quote the request_id".into(),
                Error::Unavailable(_) => "a backend is unavailable; retry shortly".into(),
            },
        }
    }

    /// The error and its sources, for the log line of a 5xx.
    pub fn source_chain(&self) -> String {
        match self {
            Self::Domain(e) => e.source_chain(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::TokenError;

    #[test]
    fn every_error_maps_to_the_design_table() {
        let domain = |e: Error| ApiError::Domain(e);
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::InvalidRequest("x".into()), 400, "invalid_request"),
            (
                domain(Error::InvalidRequest("x".into())),
                400,
                "invalid_request",
            ),
            (
                domain(Error::InvalidScope("x".into())),
                400,
                "invalid_scope",
            ),
            (domain(Error::InvalidClient), 401, "invalid_client"),
            (
                domain(Error::InvalidToken(TokenError::Missing)),
                401,
                "invalid_token",
            ),
            (
                domain(Error::InsufficientScope("write".into())),
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
            (domain(Error::SessionConflict), 409, "session_conflict"),
            (domain(Error::KeyRevoked), 409, "key_revoked"),
            (domain(Error::InvalidGrant), 400, "invalid_grant"),
            (domain(Error::TooManyKeys), 409, "too_many_keys"),
            (domain(Error::NotFound), 404, "not_found"),
            (domain(Error::OwnerMismatch), 403, "owner_mismatch"),
            (domain(Error::TooManySessions(60)), 429, "too_many_sessions"),
            (ApiError::PayloadTooLarge, 413, "invalid_request"),
            (ApiError::UnsupportedMediaType, 415, "invalid_request"),
            (domain(Error::internal("boom")), 500, "server_error"),
            (
                domain(Error::unavailable("down")),
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
        let err = ApiError::from(Error::unavailable("dynamodb endpoint 10.0.0.1 refused"));
        assert!(!err.description().contains("10.0.0.1"));
        assert!(
            err.source_chain().contains("10.0.0.1"),
            "but the log has it"
        );
        let err = ApiError::from(Error::internal("secret value was {\"key\": \"abc\"}"));
        assert!(!err.description().contains("abc"));
    }
}
