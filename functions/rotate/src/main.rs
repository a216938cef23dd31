//! The rotation Lambda: Secrets Manager invokes it for each step of a
//! signing-key rotation (see `auth_shared::aws::rotation`). It reads
//! `TOKEN_TTL_SECONDS`, `SIGNING_KEY_CACHE_SECONDS` and `CLOCK_LEEWAY_SECONDS`,
//! the lifetimes a rotation must outwait, as the other functions do, and
//! records each rotation in the audit trail of `TABLE_NAME`.

use auth_shared::aws::rotation::{RotationEvent, Rotator, Trail};
use auth_shared::domain::rotation::Spacing;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    auth_shared::telemetry::init();
    auth_shared::telemetry::install_panic_hook();
    let spacing = Spacing::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = auth_shared::aws::sdk_config().await;
    let trail = Trail::of_function(aws_sdk_dynamodb::Client::new(&sdk), &|name| {
        std::env::var(name).ok()
    })
    .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let rotator =
        Rotator::new(aws_sdk_secretsmanager::Client::new(&sdk), spacing).with_trail(trail);
    let rotator = &rotator;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<RotationEvent>| async move {
            rotator.handle(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
