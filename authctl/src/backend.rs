//! Opening the backend a command works on: the embedded store in the data
//! directory, or a DynamoDB table (and Secrets Manager secret) on AWS.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_shared::aws::secrets::SecretsManagerKeySource;
use auth_shared::config::key_replicas;
use auth_shared::domain::keyring::KeySource;
use auth_shared::domain::store::Store;
use auth_shared::local::keys::LocalKeySource;
use auth_shared::local::sqlite::SqliteStore;
use aws_config::SdkConfig;

use crate::cli::BackendArgs;
use crate::error::CliError;

/// The embedded database's file name inside the data directory.
pub const DB_FILE: &str = "auth.db";

impl BackendArgs {
    /// The key and session store.
    pub async fn store(&self) -> Result<Arc<dyn Store>, CliError> {
        match &self.table {
            Some(table) => {
                // The deployed functions' KEY_REPLICAS, so that their
                // readers find the copies this writes. Any other value is
                // still correct: every key write sets every copy there can be.
                let copies = key_replicas(&|name| std::env::var(name).ok())
                    .map_err(|e| CliError::Invalid(e.to_string()))?;
                let client = aws_sdk_dynamodb::Client::new(&sdk().await);
                Ok(Arc::new(
                    DynamoDbStore::new(client, table).with_key_replicas(copies),
                ))
            }
            None => {
                self.ensure_data_dir()?;
                let db = self.data_dir.join(DB_FILE);
                private_files(&db)?;
                Ok(Arc::new(SqliteStore::open(&db)?))
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

    /// Creates the data directory 0700, or narrows an existing one to 0700:
    /// it holds the signing key and every key's hash.
    pub fn ensure_data_dir(&self) -> Result<(), CliError> {
        let dir = &self.data_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        narrow(dir, 0o700)
    }
}

/// Creates the database file 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the database file's mode), and narrows any of the
/// three that an older version left wider.
fn private_files(db: &Path) -> Result<(), CliError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", db.display())))?;
    narrow(db, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let path = PathBuf::from(path);
        if path.exists() {
            narrow(&path, 0o600)?;
        }
    }
    Ok(())
}

/// Takes every permission beyond `mode` from `path`, saying so once.
fn narrow(path: &Path, mode: u32) -> Result<(), CliError> {
    let failed =
        |e: std::io::Error| CliError::Failed(format!("cannot secure {}: {e}", path.display()));
    let was = std::fs::metadata(path)
        .map_err(failed)?
        .permissions()
        .mode()
        & 0o777;
    if was & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
        eprintln!(
            "authctl: narrowed {} from {was:o} to {mode:o}: only its owner may read it",
            path.display()
        );
    }
    Ok(())
}

/// The AWS configuration from the standard environment, with the service's bounded timeouts.
pub async fn sdk() -> SdkConfig {
    auth_shared::aws::sdk_config().await
}
