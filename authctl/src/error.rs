//! What can go wrong in a command, and the exit code each gives.

use std::process::ExitCode;

use auth_shared::domain::admin::CreateError;
use auth_shared::domain::keyring::KeySourceError;
use auth_shared::domain::store::StoreError;
use thiserror::Error;

use crate::cli::BackendArgs;

/// A command's failure; the message is what the user reads on stderr.
#[derive(Debug, Error)]
pub enum CliError {
    /// Bad input that clap could not catch (exit 1).
    #[error("{0}")]
    Invalid(String),
    /// An id that does not exist (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// A backend that cannot be reached (exit 4).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Invalid(_) | Self::Failed(_) => 1,
            Self::NotFound(_) => 3,
            Self::Unavailable(_) => 4,
        })
    }

    /// Names the backend in an unavailable-backend message: which table or data dir failed.
    pub fn on(self, backend: &BackendArgs) -> Self {
        match self {
            Self::Unavailable(m) => Self::Unavailable(format!("{m} ({})", backend.describe())),
            other => other,
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => Self::Unavailable(format!(
                "the store is unavailable: {}",
                chain(source.as_ref())
            )),
            StoreError::Internal(m) => Self::Failed(m),
        }
    }
}

impl From<CreateError> for CliError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::EmptyName => Self::Invalid("--name must not be empty".into()),
            CreateError::Expired => Self::Invalid("the key would expire at once".into()),
            CreateError::Store(e) => e.into(),
            e @ (CreateError::Random(_) | CreateError::Collision) => Self::Failed(e.to_string()),
        }
    }
}

impl From<KeySourceError> for CliError {
    fn from(e: KeySourceError) -> Self {
        match e {
            KeySourceError::Unavailable(source) => Self::Unavailable(format!(
                "the signing key source is unavailable: {}",
                chain(source.as_ref())
            )),
            KeySourceError::Invalid(m) => Self::Failed(m),
        }
    }
}

/// An error and its sources on one line. An SDK error alone says only
/// "service error" or "dispatch failure"; the reason (no such table, connection
/// refused) is further down the chain.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        // SDK layers often repeat their source's text; say it once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
