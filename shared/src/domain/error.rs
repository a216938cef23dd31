//! Why a use case failed, in the domain's words. The adapters decide what a
//! caller sees: [`crate::http::error::ApiError`] wraps this and alone maps it
//! to statuses, and the authorizer matches on it to deny or to fail.

use std::error::Error as StdError;

use thiserror::Error;

use crate::domain::clock::ClockError;
use crate::domain::keyring::KeySourceError;
use crate::domain::store::StoreError;
use crate::domain::token::TokenError;

/// Why a use case failed. The source of a backend failure is kept for the
/// log line and never reaches the caller.
#[derive(Debug, Error)]
pub enum Error {
    /// A value the use case reads is malformed or missing: a bad session id,
    /// a bad required scope, no token to introspect.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A scope the key lacks, or a malformed scope.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// The API key is unknown, malformed, revoked or expired. One message
    /// for all, so callers cannot probe which.
    #[error("invalid client")]
    InvalidClient,
    /// The bearer token is missing or not valid.
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    /// A valid token lacks scopes the caller required; holds them.
    #[error("insufficient scope: needs {0}")]
    InsufficientScope(String),
    /// Login asked for another scope than the session's live token holds.
    #[error("session conflict")]
    SessionConflict,
    /// Login would open a session past `MAX_SESSIONS_PER_KEY`; holds the
    /// seconds until the oldest live session expires.
    #[error("too many sessions")]
    TooManySessions(u64),
    /// No such key, or one outside the caller's owner: the same answer for
    /// both, so a caller cannot learn what exists beyond its owner.
    #[error("not found")]
    NotFound,
    /// An owner-bound caller named another owner for a new key.
    #[error("owner mismatch")]
    OwnerMismatch,
    /// The key is revoked, and revoked keys do not change.
    #[error("key revoked")]
    KeyRevoked,
    /// A portal link's code is unknown, used or expired: one answer for all.
    #[error("invalid portal link")]
    InvalidGrant,
    /// A portal customer holds as many live keys as it may.
    #[error("too many keys")]
    TooManyKeys,
    /// A backend (store, key source, clock) failed or is throttled after retries.
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A bug or a broken deployment.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl Error {
    /// Wraps a backend failure.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unavailable(source.into())
    }

    /// Wraps a bug or a broken deployment.
    pub fn internal(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Internal(source.into())
    }

    /// The failure's name, as answers (RFC 6749 §5.2, RFC 6750 §3.1) and log
    /// lines give it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidClient => "invalid_client",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::SessionConflict => "session_conflict",
            Self::TooManySessions(_) => "too_many_sessions",
            Self::NotFound => "not_found",
            Self::OwnerMismatch => "owner_mismatch",
            Self::KeyRevoked => "key_revoked",
            Self::InvalidGrant => "invalid_grant",
            Self::TooManyKeys => "too_many_keys",
            Self::Internal(_) => "server_error",
            Self::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// The error and its sources, for the log line of a failure of ours.
    /// Store, SDK and key-source errors name operations and endpoints, never
    /// secrets.
    pub fn source_chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = StdError::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    /// Whether the failure is ours (a backend or a bug), not the caller's:
    /// such a failure must never be answered as a denial.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Internal(_))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::unavailable(e),
            StoreError::Internal(_) => Self::internal(e),
        }
    }
}

impl From<ClockError> for Error {
    fn from(e: ClockError) -> Self {
        Self::unavailable(e)
    }
}

impl From<KeySourceError> for Error {
    fn from(e: KeySourceError) -> Self {
        match e {
            KeySourceError::Unavailable(_) => Self::unavailable(e),
            KeySourceError::Invalid(_) => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_failures_keep_their_kind() {
        let e = Error::from(StoreError::Unavailable("throttled".into()));
        assert!(matches!(e, Error::Unavailable(_)) && e.is_failure());
        let e = Error::from(StoreError::Internal("corrupt item".into()));
        assert!(matches!(e, Error::Internal(_)) && e.is_failure());
        let e = Error::from(KeySourceError::Invalid("not JSON".into()));
        assert!(matches!(e, Error::Internal(_)));
        assert!(!Error::InvalidClient.is_failure());
        assert!(!Error::from(TokenError::Expired).is_failure());
    }
}
