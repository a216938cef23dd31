//! Opening the backend a command works on: the embedded store in the data
//! directory, or a DynamoDB table (and Secrets Manager secret) on AWS.

use std::sync::Arc;

use auth_shared::keyring::KeySource;
use auth_shared::local_keys::LocalKeySource;
use auth_shared::secrets::SecretsManagerKeySource;
use auth_shared::store::Store;
use auth_shared::store::dynamodb::DynamoDbStore;
use auth_shared::store::sqlite::SqliteStore;
use aws_config::SdkConfig;

use crate::cli::BackendArgs;
use crate::error::CliError;

/// The embedded database's file name inside the data directory.
pub const DB_FILE: &str = "auth.db";

impl BackendArgs {
    /// The key and session store.
    pub async fn store(&self) -> Result<Arc<dyn Store>, CliError> {
        match &self.table {
            Some(table) => Ok(Arc::new(DynamoDbStore::new(
                aws_sdk_dynamodb::Client::new(&sdk().await),
                table,
            ))),
            None => {
                self.ensure_data_dir()?;
                Ok(Arc::new(SqliteStore::open(&self.data_dir.join(DB_FILE))?))
            }
        }
    }

    /// Where signing keys come from: Secrets Manager next to a table, a file in the data directory otherwise.
    pub async fn key_source(&self) -> Result<Arc<dyn KeySource>, CliError> {
        match &self.table {
            Some(_) => {
                let arn = self.secret_arn()?;
                let client = aws_sdk_secretsmanager::Client::new(&sdk().await);
                Ok(Arc::new(SecretsManagerKeySource::new(client, arn)))
            }
            None => {
                self.ensure_data_dir()?;
                Ok(Arc::new(LocalKeySource::open_or_create(&self.data_dir)?))
            }
        }
    }

    /// The signing secret, required on DynamoDB.
    pub fn secret_arn(&self) -> Result<&str, CliError> {
        self.signing_secret_arn.as_deref().ok_or_else(|| {
            CliError::Invalid(
                "--signing-secret-arn (or SIGNING_SECRET_ARN) is required with --table".into(),
            )
        })
    }

    /// The backend in words, for messages.
    pub fn describe(&self) -> String {
        match &self.table {
            Some(table) => format!("DynamoDB table {table}"),
            None => format!("embedded store in {}", self.data_dir.display()),
        }
    }

    fn ensure_data_dir(&self) -> Result<(), CliError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            CliError::Failed(format!("cannot create {}: {e}", self.data_dir.display()))
        })
    }
}

/// The AWS configuration from the standard environment, with the service's bounded timeouts.
pub async fn sdk() -> SdkConfig {
    auth_shared::app::aws_sdk_config().await
}
