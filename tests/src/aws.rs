//! The AWS layer's harness: [`AwsTestApp`] is the real handler code on its
//! own DynamoDB table and Secrets Manager secret in moto. `scripts/test`
//! starts moto and sets `AWS_ENDPOINT_URL`; [`moto`] refuses to run without it.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use auth_shared::aws::calls::AwsCalls;
use auth_shared::aws::dynamodb::create_table;
use auth_shared::aws::sdk_loader;
use auth_shared::aws::secrets::SecretsManagerKeySource;
use auth_shared::config::{Config, TokenPolicy};
use auth_shared::domain::clock::ManualClock;
use auth_shared::domain::keyring::KeyRing;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

use crate::{ISSUER, KEY_CACHE, StolenKey, TestApp, unique};

/// The SDK configuration for moto, as `scripts/test` exported it.
///
/// With patient timeouts: one moto serving the whole suite on a busy machine
/// can take seconds to answer, and under the service's own bounds (1.5 s an
/// attempt) a call that landed would be retried into "already exists", a
/// lost conditional write or an extra call in a call count. The bounds
/// themselves are tested against [`dead_endpoint`], which keeps them.
pub async fn moto() -> SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: the AWS layer (--features moto) runs against moto; \
         run it with scripts/test, which starts moto, or start one and export \
         AWS_ENDPOINT_URL (plain `cargo test` runs the other layers without it)"
    );
    sdk_loader()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .load()
        .await
}

/// An SDK configuration whose endpoint refuses every connection, with the
/// service's own timeouts and retries. Its region and credentials are fixed,
/// so it needs no environment: no moto, no credentials, no metadata service.
pub async fn dead_endpoint() -> SdkConfig {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    sdk_loader()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// Creates a signing secret `{"key": key}` and returns its ARN and version
/// id. A retry is safe: the SDK sends one ClientRequestToken across its
/// attempts, so a retry whose first attempt landed gets the secret back, not
/// ResourceExistsException.
pub async fn create_secret_version(sdk: &SdkConfig, key: &str) -> (String, String) {
    let value = serde_json::json!({ "key": key }).to_string();
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(unique("signing"))
        .secret_string(value)
        .send()
        .await
        .unwrap();
    (out.arn.unwrap(), out.version_id.unwrap())
}

/// Creates a signing secret `{"key": key}` and returns its ARN.
pub async fn create_secret(sdk: &SdkConfig, key: &str) -> String {
    create_secret_version(sdk, key).await.0
}

/// A key ring on `secret_arn` with the default cache.
pub fn key_ring(sdk: &SdkConfig, secret_arn: &str) -> KeyRing {
    let source = SecretsManagerKeySource::new(aws_sdk_secretsmanager::Client::new(sdk), secret_arn);
    KeyRing::new(Arc::new(source), KEY_CACHE)
}

/// One test's service as deployed: the real handlers on a fresh table and
/// secret in moto. Everything a [`TestApp`] does, it does too.
pub struct AwsTestApp {
    /// The service; its store is DynamoDB, its keys from Secrets Manager.
    pub inner: TestApp,
    /// The AWS operations the app's clients started.
    pub calls: AwsCalls,
    /// The SDK configuration for moto.
    pub sdk: SdkConfig,
    /// This test's table.
    pub table: String,
    /// This test's signing secret (ARN).
    pub secret_arn: String,
}

impl Deref for AwsTestApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.inner
    }
}

impl DerefMut for AwsTestApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.inner
    }
}

impl AwsTestApp {
    /// A service with the default token rules.
    pub async fn spawn() -> Self {
        Self::spawn_with(TokenPolicy::with_issuer(ISSUER)).await
    }

    /// A service with `policy`.
    pub async fn spawn_with(policy: TokenPolicy) -> Self {
        let sdk = moto().await;
        let table = unique("auth");
        create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
            .await
            .unwrap();
        let secret = "s".repeat(48);
        let (secret_arn, version) = create_secret_version(&sdk, &secret).await;
        let clock = Arc::new(ManualClock::starting_now());
        let config = config(&table, &secret_arn, policy);
        let (app, calls) = auth_shared::aws::app(&config, &sdk, clock.clone());
        Self {
            inner: TestApp {
                app,
                clock,
                signing_key: StolenKey {
                    kid: version,
                    secret,
                },
                data_dir: None,
            },
            calls,
            sdk,
            table,
            secret_arn,
        }
    }

    /// This app's configuration, for a second environment on the same table and secret.
    pub fn config(&self) -> Config {
        config(&self.table, &self.secret_arn, self.app.policy.clone())
    }

    /// Where the store keeps its data, as an error message must never name it.
    pub fn store_location(&self) -> String {
        self.table.clone()
    }

    /// Breaks the stored item of `api_key` and each of its copies by hand
    /// (their scopes become a number), so that every read of it is a 500.
    pub async fn corrupt_key_item(&self, api_key: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let id = crate::expect::key_id(api_key);
        for copy in 0..auth_shared::config::DEFAULT_KEY_REPLICAS {
            self.dynamodb()
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key_item_pk(id, copy)))
                .key("sk", AttributeValue::S("KEY".into()))
                .update_expression("SET scopes = :n")
                .expression_attribute_values(":n", AttributeValue::N("7".into()))
                .send()
                .await
                .unwrap();
        }
    }

    /// A raw DynamoDB client on moto.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }
}

/// The `pk` of copy `copy` of the key item of the key id `id`; 0 is the primary.
pub fn key_item_pk(id: &str, copy: u8) -> String {
    match copy {
        0 => format!("KEY#{id}"),
        n => format!("KEY#{id}#R{n}"),
    }
}

/// The configuration of a test environment: keys cached for 300 s, as deployed.
fn config(table: &str, secret_arn: &str, tokens: TokenPolicy) -> Config {
    Config {
        table_name: table.to_owned(),
        key_replicas: auth_shared::config::DEFAULT_KEY_REPLICAS,
        signing_secret_arn: secret_arn.to_owned(),
        signing_key_cache: KEY_CACHE,
        tokens,
        admin: auth_shared::config::AdminPolicy::default(),
    }
}
