//! The one error of the client: why a login or revoke failed.

use std::fmt;
use std::sync::Arc;

/// A login or revoke that failed, or a source that could not be built.
///
/// [`reason`](Self::reason) is the OAuth2 error code the server sent
/// (`invalid_client`, `too_many_sessions`, `invalid_scope`, ...), or one of
/// the client's own: [`UNREACHABLE`](Self::UNREACHABLE) (no answer, a
/// timeout, or a 5xx without an error code, as a proxy sends),
/// [`INVALID_RESPONSE`](Self::INVALID_RESPONSE) (an answer that is not the
/// service's) and [`INVALID_CONFIGURATION`](Self::INVALID_CONFIGURATION)
/// (the builder's input). It is `Clone`, because every caller waiting on
/// one login gets its error. It holds no key and no token.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{action} failed: {reason}{}: {description}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct Error {
    action: &'static str,
    reason: String,
    status: Option<u16>,
    description: String,
    #[source]
    source: Option<Arc<reqwest::Error>>,
}

impl Error {
    /// The service could not be reached, or did not answer in time.
    pub const UNREACHABLE: &'static str = "unreachable";
    /// The service's answer was not one it gives (a wrong base URL?).
    pub const INVALID_RESPONSE: &'static str = "invalid_response";
    /// The builder was given something it cannot use.
    pub const INVALID_CONFIGURATION: &'static str = "invalid_configuration";

    /// Why it failed: the server's OAuth2 error code, or one of the
    /// constants above.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether the service could not be reached: worth trying again later.
    pub fn is_unreachable(&self) -> bool {
        self.reason == Self::UNREACHABLE
    }

    pub(crate) fn new(
        action: Action,
        reason: impl Into<String>,
        description: impl fmt::Display,
    ) -> Self {
        Self {
            action: action.as_str(),
            reason: reason.into(),
            status: None,
            description: description.to_string(),
            source: None,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// No answer: the connection failed or timed out. The URL it keeps names
    /// the service's endpoint only; request bodies are never part of it.
    pub(crate) fn unreachable(action: Action, source: reqwest::Error) -> Self {
        let description = if source.is_timeout() {
            "no answer in time"
        } else {
            "no answer"
        };
        Self {
            source: Some(Arc::new(source)),
            ..Self::new(action, Self::UNREACHABLE, description)
        }
    }

    pub(crate) fn configuration(description: impl fmt::Display) -> Self {
        Self::new(Action::Build, Self::INVALID_CONFIGURATION, description)
    }
}

/// What was being done when an [`Error`] happened, for its message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action {
    Build,
    Login,
    Revoke,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Build => "building the token source",
            Action::Login => "login",
            Action::Revoke => "revoke",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_action_reason_and_status() {
        let error = Error::new(Action::Login, "invalid_client", "the API key is not valid")
            .with_status(401);
        assert_eq!(
            error.to_string(),
            "login failed: invalid_client (HTTP 401): the API key is not valid"
        );
        assert_eq!(error.reason(), "invalid_client");
        assert_eq!(error.status(), Some(401));
        assert!(!error.is_unreachable());
    }
}
