//! The rotation Lambda: Secrets Manager invokes it for each step of a
//! signing-key rotation (see `auth_shared::rotation`).

use auth_shared::rotation::{RotationEvent, Rotator};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    auth_shared::telemetry::init();
    auth_shared::telemetry::install_panic_hook();
    let sdk = auth_shared::app::aws_sdk_config().await;
    let rotator = Rotator::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let rotator = &rotator;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<RotationEvent>| async move {
            rotator.handle(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
