//! `authctl setup` and `authctl rotate-signing-key`.

use auth_shared::local_keys::LocalKeySource;
use auth_shared::rotation::Rotator;
use auth_shared::store::dynamodb::create_table;
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::backend::sdk;
use crate::cli::{BackendArgs, SetupArgs};
use crate::error::{CliError, chain};

/// Creates the table and a signing secret, and prints them as shell
/// assignments. Running it again keeps what exists (and says so on stderr),
/// so a script may call it unconditionally.
pub async fn setup(backend: &BackendArgs, args: SetupArgs) -> Result<(), CliError> {
    let table = backend
        .table
        .as_deref()
        .ok_or_else(|| CliError::Invalid("setup needs --table NAME (or TABLE_NAME)".into()))?;
    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    if table_exists(&dynamodb, table).await? {
        eprintln!("Table {table} exists; keeping it.");
    } else {
        create_table(&dynamodb, table).await?;
    }
    let name = args
        .secret_name
        .unwrap_or_else(|| format!("{table}-signing-key"));
    let arn = signing_secret(&aws_sdk_secretsmanager::Client::new(&sdk), &name).await?;
    println!("TABLE_NAME={table}");
    println!("SIGNING_SECRET_ARN={arn}");
    Ok(())
}

async fn table_exists(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<bool, CliError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(CliError::Unavailable(format!(
            "DynamoDB is unavailable: describing table {table}: {}",
            chain(&e)
        ))),
    }
}

/// The ARN of the secret `name`, created with a fresh 256-bit key unless it exists.
async fn signing_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
) -> Result<String, CliError> {
    let mut key = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| CliError::Failed(format!("no randomness: {e}")))?;
    let value = serde_json::json!({ "key": hex::encode(key) }).to_string();
    let arn = match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(created) => created.arn,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            eprintln!("Secret {name} exists; keeping it.");
            client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| {
                    CliError::Unavailable(format!(
                        "Secrets Manager is unavailable: describing secret {name}: {}",
                        chain(&e)
                    ))
                })?
                .arn
        }
        Err(e) => {
            return Err(CliError::Unavailable(format!(
                "Secrets Manager is unavailable: creating secret {name}: {}",
                chain(&e)
            )));
        }
    };
    arn.ok_or_else(|| CliError::Failed("Secrets Manager returned no ARN".into()))
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
                    CliError::Unavailable(format!(
                        "rotation failed, the secret is unchanged: {}",
                        chain(&e)
                    ))
                })?
        }
    };
    println!("New signing key {kid}; the previous key keeps verifying live tokens.");
    Ok(())
}
