//! Everything that names an AWS SDK type: the SDK configuration, the
//! counted clients, the DynamoDB store, the Secrets Manager key source and
//! the signing-key rotation. [`from_env`] is a Lambda's cold start.

pub mod calls;
pub mod dynamodb;
pub mod rotation;
pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::{Config, ConfigError};
use crate::domain::App;
use crate::domain::clock::{Clock, SystemClock};
use calls::AwsCalls;
use dynamodb::DynamoDbStore;
use secrets::SecretsManagerKeySource;

/// The production wiring: an [`App`] on DynamoDB and Secrets Manager from
/// `sdk`, reading time from `clock`, and the counter of the AWS operations
/// its clients start.
pub fn app(config: &Config, sdk: &SdkConfig, clock: Arc<dyn Clock>) -> (App, AwsCalls) {
    let calls = AwsCalls::default();
    let store = DynamoDbStore::new(calls.dynamodb(sdk), &config.table_name)
        .with_key_replicas(config.key_replicas);
    let source =
        SecretsManagerKeySource::new(calls.secrets_manager(sdk), &config.signing_secret_arn);
    let app = App::new(
        config.tokens.clone(),
        Arc::new(store),
        Arc::new(source),
        config.signing_key_cache,
        clock,
    )
    .with_admin(config.admin.clone());
    (app, calls)
}

/// A function's cold start: configuration from the environment, then AWS
/// clients. A bad setting is logged as one line naming the variable and
/// returned, so the function fails at init rather than on a request.
pub async fn from_env() -> Result<App, ConfigError> {
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    Ok(app(&config, &sdk_config().await, Arc::new(SystemClock)).0)
}

/// The AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`
/// points it at an emulator), with bounded timeouts and retries: a dead
/// backend must turn into a 503 within a few seconds, well before the Lambda
/// timeout.
pub async fn sdk_config() -> SdkConfig {
    sdk_loader().load().await
}

/// The loader behind [`sdk_config`], for callers that add settings (tests
/// point it at a dead endpoint).
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_millis(1500))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(500)),
        )
}
