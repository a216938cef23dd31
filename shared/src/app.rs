//! The state a function builds once per cold start and lends to every request.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::calls::AwsCalls;
use crate::clock::{Clock, ClockError, SystemClock};
use crate::config::{Config, TokenPolicy};
use crate::error::ApiError;
use crate::keyring::{KeyRing, KeySourceError};
use crate::secrets::SecretsManagerKeySource;
use crate::store::dynamodb::DynamoDbStore;
use crate::store::{Store, StoreError};

/// Everything the logic needs: token rules, the store, the signing keys and a clock.
#[derive(Clone)]
pub struct App {
    /// AWS operations made through this app's clients.
    pub calls: AwsCalls,
    /// Token rules.
    pub policy: TokenPolicy,
    /// Keys and sessions.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl App {
    /// The production wiring: DynamoDB and Secrets Manager from `sdk`, with counted calls.
    pub fn from_aws(config: &Config, sdk: &SdkConfig) -> Self {
        let calls = AwsCalls::default();
        let store = DynamoDbStore::new(calls.dynamodb(sdk), &config.table_name);
        let source =
            SecretsManagerKeySource::new(calls.secrets_manager(sdk), &config.signing_secret_arn);
        Self {
            calls,
            policy: config.tokens.clone(),
            store: Arc::new(store),
            keys: Arc::new(KeyRing::new(Arc::new(source), config.signing_key_cache)),
            clock: Arc::new(SystemClock),
        }
    }
}

impl App {
    /// Pays during init what the first request would otherwise pay: the
    /// signing keys (one Secrets Manager round trip) and the DynamoDB
    /// connection, both at once and bounded in time. A failure only logs: the
    /// first request then retries, and answers 503 if the backend is down.
    pub async fn warm_up(&self) {
        let keys = async { self.keys.keys().await.map(drop).map_err(|e| e.to_string()) };
        let store = async { self.store.warm_up().await.map_err(|e| e.to_string()) };
        match tokio::time::timeout(WARM_UP_LIMIT, async { tokio::join!(keys, store) }).await {
            Ok((Ok(()), Ok(()))) => {}
            Ok((keys, store)) => {
                tracing::warn!(keys = ?keys.err(), store = ?store.err(), "warm-up failed")
            }
            Err(_) => tracing::warn!("warm-up timed out"),
        }
    }
}

/// The longest a cold start waits for [`App::warm_up`].
const WARM_UP_LIMIT: Duration = Duration::from_secs(3);

/// The AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`
/// points it at an emulator), with bounded timeouts and retries: a dead
/// backend must turn into a 503 within a few seconds, well before the Lambda
/// timeout.
pub async fn aws_sdk_config() -> SdkConfig {
    aws_sdk_loader().load().await
}

/// The loader behind [`aws_sdk_config`], for callers that add settings (tests
/// point it at a dead endpoint).
pub fn aws_sdk_loader() -> aws_config::ConfigLoader {
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(e),
            StoreError::Internal(_) => ApiError::internal(e),
        }
    }
}

impl From<ClockError> for ApiError {
    fn from(e: ClockError) -> Self {
        ApiError::unavailable(e)
    }
}

impl From<KeySourceError> for ApiError {
    fn from(e: KeySourceError) -> Self {
        match e {
            KeySourceError::Unavailable(_) => ApiError::unavailable(e),
            KeySourceError::Invalid(_) => ApiError::internal(e),
        }
    }
}

/// A function's cold start: configuration from the environment, then AWS
/// clients. A bad setting is logged as one line naming the variable and
/// returned, so the function fails at init rather than on a request.
pub async fn from_env() -> Result<App, crate::config::ConfigError> {
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    Ok(App::from_aws(&config, &aws_sdk_config().await))
}
