//! What can go wrong in a command, and the exit code each gives.

use std::process::ExitCode;

use auth_shared::keyring::KeySourceError;
use auth_shared::store::StoreError;
use thiserror::Error;

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
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => {
                Self::Unavailable(format!("the store is unavailable: {source}"))
            }
            StoreError::Internal(m) => Self::Failed(m),
        }
    }
}

impl From<KeySourceError> for CliError {
    fn from(e: KeySourceError) -> Self {
        match e {
            KeySourceError::Unavailable(source) => {
                Self::Unavailable(format!("the signing key source is unavailable: {source}"))
            }
            KeySourceError::Invalid(m) => Self::Failed(m),
        }
    }
}
