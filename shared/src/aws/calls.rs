//! Counts of AWS calls, kept by an SDK interceptor on every client the
//! functions build, so tests and benchmarks can hold the service to its
//! budget: verify 1 DynamoDB call, login 1 (reuse) or 2 (mint), and no
//! Secrets Manager call per request once the key cache is warm.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;

/// Operations started per service (retries of one operation count once).
#[derive(Debug, Default, Clone)]
pub struct AwsCalls {
    dynamodb: Arc<AtomicU64>,
    secrets_manager: Arc<AtomicU64>,
}

/// A snapshot of [`AwsCalls`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCount {
    /// DynamoDB operations.
    pub dynamodb: u64,
    /// Secrets Manager operations.
    pub secrets_manager: u64,
}

impl AwsCalls {
    /// The counts so far.
    pub fn count(&self) -> CallCount {
        CallCount {
            dynamodb: self.dynamodb.load(Ordering::Relaxed),
            secrets_manager: self.secrets_manager.load(Ordering::Relaxed),
        }
    }

    /// A DynamoDB client on `sdk` whose operations are counted here.
    pub fn dynamodb(&self, sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(Counter(self.dynamodb.clone()))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// A Secrets Manager client on `sdk` whose operations are counted here.
    pub fn secrets_manager(&self, sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .interceptor(Counter(self.secrets_manager.clone()))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }
}

#[derive(Debug)]
struct Counter(Arc<AtomicU64>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "AwsCallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
