//! `authctl setup` and `authctl rotate-signing-key`.

use auth_shared::local_keys::LocalKeySource;
use auth_shared::rotation::Rotator;
use auth_shared::store::dynamodb::create_table;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::backend::sdk;
use crate::cli::{BackendArgs, SetupArgs};
use crate::error::CliError;

/// Creates the table and a signing secret, and prints them as shell assignments.
pub async fn setup(backend: &BackendArgs, args: SetupArgs) -> Result<(), CliError> {
    let table = backend
        .table
        .as_deref()
        .ok_or_else(|| CliError::Invalid("setup needs --table NAME (or TABLE_NAME)".into()))?;
    let sdk = sdk().await;
    create_table(&aws_sdk_dynamodb::Client::new(&sdk), table).await?;
    let mut key = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| CliError::Failed(format!("no randomness: {e}")))?;
    let name = args
        .secret_name
        .unwrap_or_else(|| format!("{table}-signing-key"));
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&name)
        .secret_string(serde_json::json!({ "key": hex::encode(key) }).to_string())
        .send()
        .await
        .map_err(|e| {
            CliError::Unavailable(format!(
                "cannot create secret {name}: {}",
                DisplayErrorContext(&e)
            ))
        })?;
    let arn = secret
        .arn
        .ok_or_else(|| CliError::Failed("Secrets Manager returned no ARN".into()))?;
    println!("TABLE_NAME={table}");
    println!("SIGNING_SECRET_ARN={arn}");
    Ok(())
}

/// Rotates the signing key of the embedded store, or drives the four
/// Secrets Manager rotation steps for the secret next to a table.
pub async fn rotate_signing_key(backend: &BackendArgs) -> Result<(), CliError> {
    let kid = match &backend.table {
        None => LocalKeySource::open_or_create(&backend.data_dir)?.rotate()?,
        Some(_) => {
            let arn = backend.secret_arn()?;
            Rotator::new(aws_sdk_secretsmanager::Client::new(&sdk().await))
                .rotate(arn)
                .await
                .map_err(|e| {
                    CliError::Unavailable(format!("rotation failed, the secret is unchanged: {e}"))
                })?
        }
    };
    println!("New signing key {kid}; the previous key keeps verifying live tokens.");
    Ok(())
}
