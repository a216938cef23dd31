//! Counts of AWS calls, kept by an SDK interceptor on every client the
//! functions build, so tests and benchmarks can hold the service to its
//! budget: verify 1 DynamoDB call, login 1 (reuse) or 2 (mint), and no
//! Secrets Manager call per request once the key cache is warm. The same
//! interceptor records which operations ran, as IAM action names, so a test
//! can hold each function's calls to its IAM policy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Operations started per service (retries of one operation count once),
/// and which ones.
#[derive(Debug, Default, Clone)]
pub struct AwsCalls {
    dynamodb: Arc<AtomicU64>,
    secrets_manager: Arc<AtomicU64>,
    operations: Arc<Mutex<Operations>>,
}

/// Operation names per service, both as the SDK names them ("DynamoDB",
/// "GetItem"). Each name is allocated once, the first time it runs.
type Operations = BTreeMap<String, BTreeSet<String>>;

/// What an operation without SDK metadata is recorded as: no policy grants
/// it, so a check of the calls against a policy fails rather than skips it.
const UNKNOWN: &str = "unknown";

/// A snapshot of [`AwsCalls`]' counts.
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

    /// Every operation started so far, successful or not, as its IAM action
    /// (`dynamodb:GetItem`, `secretsmanager:GetSecretValue`): the service
    /// prefix is the SDK's service name in lower case without spaces, which
    /// is IAM's for both services used here.
    pub fn operations(&self) -> BTreeSet<String> {
        let operations = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        operations
            .iter()
            .flat_map(|(service, names)| {
                let prefix: String = service
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                names.iter().map(move |name| format!("{prefix}:{name}"))
            })
            .collect()
    }

    /// A DynamoDB client on `sdk` whose operations are counted here.
    pub fn dynamodb(&self, sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(Counter {
                per_request: true,
                ..self.counter(&self.dynamodb)
            })
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// A Secrets Manager client on `sdk` whose operations are counted here.
    pub fn secrets_manager(&self, sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .interceptor(self.counter(&self.secrets_manager))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    fn counter(&self, count: &Arc<AtomicU64>) -> Counter {
        Counter {
            count: count.clone(),
            operations: self.operations.clone(),
            per_request: false,
        }
    }
}

#[derive(Debug)]
struct Counter {
    count: Arc<AtomicU64>,
    operations: Arc<Mutex<Operations>>,
    /// Also counted for the request running the operation, for its
    /// `DynamoDbCalls` metric.
    per_request: bool,
}

impl Counter {
    fn record(&self, service: &str, operation: &str) {
        let mut operations = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match operations.get_mut(service) {
            Some(names) if names.contains(operation) => {}
            Some(names) => {
                names.insert(operation.to_owned());
            }
            None => {
                operations.insert(service.to_owned(), BTreeSet::from([operation.to_owned()]));
            }
        }
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "AwsCallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.per_request {
            crate::telemetry::metrics::count_dynamodb_call();
        }
        Ok(())
    }

    // Not in read_before_execution: a client interceptor runs that before
    // the operation's own configuration, its Metadata, is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // IAM has no action for a transaction: each of its writes needs the
        // permission of the single-item call it stands for.
        let transaction = context.input().downcast_ref::<TransactWriteItemsInput>();
        match (cfg.load::<Metadata>(), transaction) {
            (Some(metadata), Some(input)) => {
                for item in input.transact_items() {
                    let actions = [
                        (item.put.is_some(), "PutItem"),
                        (item.update.is_some(), "UpdateItem"),
                        (item.delete.is_some(), "DeleteItem"),
                        (item.condition_check.is_some(), "ConditionCheckItem"),
                    ];
                    for (_, action) in actions.iter().filter(|(used, _)| *used) {
                        self.record(metadata.service(), action);
                    }
                }
            }
            (Some(metadata), None) => self.record(metadata.service(), metadata.name()),
            (None, _) => self.record(UNKNOWN, UNKNOWN),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_config::Region;
    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::Credentials;

    /// An SDK configuration whose endpoint refuses every connection: each
    /// call fails, after the interceptor has seen it.
    async fn refused() -> SdkConfig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        crate::aws::sdk_loader()
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .load()
            .await
    }

    #[tokio::test]
    async fn each_operation_is_recorded_once_as_its_iam_action_even_when_it_fails() {
        let sdk = refused().await;
        let calls = AwsCalls::default();
        let dynamodb = calls.dynamodb(&sdk);
        let secrets = calls.secrets_manager(&sdk);
        assert!(calls.operations().is_empty());

        for _ in 0..2 {
            let get = dynamodb.get_item().table_name("t").send().await;
            assert!(get.is_err(), "the endpoint refuses connections");
        }
        let query = dynamodb.query().table_name("t").send().await;
        assert!(query.is_err());
        let read = secrets.get_secret_value().secret_id("s").send().await;
        assert!(read.is_err());

        assert_eq!(
            calls.operations(),
            BTreeSet::from([
                "dynamodb:GetItem".to_owned(),
                "dynamodb:Query".to_owned(),
                "secretsmanager:GetSecretValue".to_owned(),
            ])
        );
        assert_eq!(
            calls.count(),
            CallCount {
                dynamodb: 3,
                secrets_manager: 1
            },
            "the counts are unchanged by the recording"
        );
    }
}
