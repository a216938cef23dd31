//! `authctl setup` and `authctl rotate-signing-key`.

use auth_shared::aws::dynamodb::create_table;
use auth_shared::aws::rotation::{RotationError, Rotator, Trail};
use auth_shared::aws::secrets::SecretsManagerKeySource;
use auth_shared::domain::audit::AuditEvent;
use auth_shared::domain::keyring::{KeySource, KeySourceError};
use auth_shared::domain::rotation::{Pace, Spacing, TooSoon};
use auth_shared::domain::store::StoreError;
use auth_shared::local::keys::{LocalKeySource, LocalRotationError};
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::backend::sdk;
use crate::cli::{BackendArgs, RotateSigningKeyArgs, SetupArgs};
use crate::error::{CliError, chain};
use crate::keys::operator;

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
            // The SDK sends one ClientRequestToken across its retries, so a
            // retry whose first answer was lost gets the secret back, not
            // this error: the secret is from an earlier run, or not ours.
            SecretsManagerKeySource::new(client.clone(), name)
                .load_current()
                .await
                .map_err(|e| match e {
                    KeySourceError::Invalid(reason) => CliError::Failed(format!(
                        "secret {name} exists but holds no signing key ({reason}); \
                         choose another --secret-name"
                    )),
                    e => e.into(),
                })?;
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
/// Secrets Manager rotation steps for the secret next to a table, and
/// records the rotation in the store's audit trail as the operator's;
/// refused (exit 1) within the spacing of the previous rotation unless forced.
pub async fn rotate_signing_key(
    backend: &BackendArgs,
    args: RotateSigningKeyArgs,
) -> Result<(), CliError> {
    let pace = if args.force {
        Pace::Forced
    } else {
        Pace::Spaced
    };
    let spacing = spacing(backend)?;
    let stamp = operator()?;
    // Opened first (and on the embedded store, the data directory made): a
    // trail that cannot be opened stops the rotation before it starts.
    let store = backend.store().await?;
    let rotated = match &backend.table {
        None => {
            let rotated = LocalKeySource::open_or_create(&backend.data_dir)?
                .rotate(spacing, pace, stamp.now_ms / 1000)
                .map_err(|e| match e {
                    LocalRotationError::TooSoon(e) => too_soon(&e),
                    LocalRotationError::Keys(e) => e.into(),
                })?;
            let event = AuditEvent::of_signing_key_rotation(
                rotated.replaced.as_deref(),
                &rotated.kid,
                &stamp,
            );
            store
                .record_event(&event)
                .await
                .map_err(|e| unrecorded(&rotated.kid, &e))?;
            rotated
        }
        Some(_) => {
            let arn = backend.secret_arn()?;
            let trail = Trail {
                store,
                actor: stamp.origin.actor,
                retention_days: stamp.retention_days,
            };
            Rotator::new(aws_sdk_secretsmanager::Client::new(&sdk().await), spacing)
                .with_trail(trail)
                .rotate(arn, pace)
                .await
                .map_err(|e| {
                    let failed = format!("rotation failed, the secret is unchanged: {}", chain(&e));
                    match e {
                        RotationError::TooSoon(e) => too_soon(&e),
                        RotationError::Unrecorded { kid, source } => unrecorded(&kid, &source),
                        RotationError::Backend(_) => CliError::Unavailable(failed),
                        _ => CliError::Failed(failed),
                    }
                })?
        }
    };
    println!(
        "New signing key {}; the previous key keeps verifying live tokens.",
        rotated.kid
    );
    if let (Pace::Forced, Some(dropped)) = (pace, &rotated.dropped) {
        eprintln!(
            "Forced: key {dropped} no longer verifies; tokens it signed are refused \
             and their clients must log in again."
        );
    }
    Ok(())
}

/// The rotation happened but its event was not written: said as such, so
/// no one takes the old key for current.
fn unrecorded(kid: &str, e: &StoreError) -> CliError {
    let message = format!(
        "signing key {kid} is current, but its signing_key.rotated event was not written: {}",
        chain(e)
    );
    match e {
        StoreError::Unavailable(_) => CliError::Unavailable(message),
        StoreError::Internal(_) => CliError::Failed(message),
    }
}

fn too_soon(e: &TooSoon) -> CliError {
    CliError::Failed(format!(
        "{e}. Run it then, or with --force if the key leaked \
         (tokens signed by the key that drops out stop verifying)."
    ))
}

/// The spacing of the service this backend serves: the settings `serve`
/// reads, with its default key cache (5 s on the embedded store).
fn spacing(backend: &BackendArgs) -> Result<Spacing, CliError> {
    let local = backend.table.is_none();
    Spacing::from_lookup(&|name| {
        let value = std::env::var(name).ok();
        match name {
            "SIGNING_KEY_CACHE_SECONDS" if local => value.or_else(|| Some("5".to_owned())),
            _ => value,
        }
    })
    .map_err(|e| CliError::Invalid(e.to_string()))
}
