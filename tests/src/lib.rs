//! The integration test harness: each [`TestApp`] is the real handler code on
//! its own DynamoDB table and Secrets Manager secret in moto, so tests run in
//! parallel and in any order. `scripts/test` starts moto and sets
//! `AWS_ENDPOINT_URL`; nothing here is a mock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_shared::App;
use auth_shared::aws::calls::AwsCalls;
use auth_shared::aws::dynamodb::create_table;
use auth_shared::aws::sdk_loader;
use auth_shared::aws::secrets::SecretsManagerKeySource;
use auth_shared::config::{Config, TokenPolicy};
use auth_shared::domain::api_key::{ApiKey, KeyRecord};
use auth_shared::domain::clock::ManualClock;
use auth_shared::domain::keyring::KeyRing;
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::store::Store;
use auth_shared::http::{self, Route};
use auth_shared::local::sqlite::SqliteStore;
use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use lambda_http::Body;
use lambda_http::http::{HeaderMap, Method};
use secrecy::ExposeSecret;
use serde_json::Value;

pub use auth_shared;

/// The issuer every test app signs with.
pub const ISSUER: &str = "https://auth.test";

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
        "AWS_ENDPOINT_URL is not set: run the suite with scripts/test, which starts moto"
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

/// An SDK configuration whose endpoint refuses every connection.
pub async fn dead_endpoint() -> SdkConfig {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    sdk_loader()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .load()
        .await
}

/// A unique name for a table or secret.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One test's service: the real handlers on a fresh table and secret.
pub struct TestApp {
    /// The state the handlers run on; tests may swap parts of it.
    pub app: App,
    /// The AWS operations the app's clients started.
    pub calls: AwsCalls,
    /// Time as the handlers see it.
    pub clock: Arc<ManualClock>,
    /// The SDK configuration for moto.
    pub sdk: SdkConfig,
    /// This test's table.
    pub table: String,
    /// This test's signing secret (ARN).
    pub secret_arn: String,
    /// The directory of an embedded store, deleted with the app.
    pub data_dir: Option<tempfile::TempDir>,
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct TestResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Value,
}

impl TestResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `access_token` of a login response.
    pub fn token(&self) -> String {
        assert_eq!(self.status, 200, "expected a token, got {self:?}");
        self.body["access_token"].as_str().unwrap().to_owned()
    }

    /// The `error` code.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl TestApp {
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
        let secret_arn = create_secret(&sdk, &"s".repeat(48)).await;
        let clock = Arc::new(ManualClock::starting_now());
        let config = config(&table, &secret_arn, policy);
        let (app, calls) = auth_shared::aws::app(&config, &sdk, clock.clone());
        Self {
            app,
            calls,
            clock,
            sdk,
            table,
            secret_arn,
            data_dir: None,
        }
    }

    /// A service with `policy` on the embedded SQLite store (signing keys
    /// still from moto's Secrets Manager).
    pub async fn spawn_sqlite_with(policy: TokenPolicy) -> Self {
        let mut t = Self::spawn_with(policy).await;
        let dir = tempfile::tempdir().unwrap();
        t.app.store = Arc::new(SqliteStore::open(&dir.path().join("auth.db")).unwrap());
        t.data_dir = Some(dir);
        t
    }

    /// The same service on each store, named: DynamoDB (moto) and SQLite.
    pub async fn on_both_stores(policy: TokenPolicy) -> Vec<(&'static str, Self)> {
        vec![
            ("dynamodb", Self::spawn_with(policy.clone()).await),
            ("sqlite", Self::spawn_sqlite_with(policy).await),
        ]
    }

    /// This app's configuration, for a second environment on the same table and secret.
    pub fn config(&self) -> Config {
        config(&self.table, &self.secret_arn, self.app.policy.clone())
    }

    /// Creates an API key with `scopes` and returns it as its owner would get it.
    pub async fn create_key(&self, scopes: &str) -> String {
        self.create_key_expiring(scopes, None).await
    }

    /// Creates an API key that expires at `expires_at`.
    pub async fn create_key_expiring(&self, scopes: &str, expires_at: Option<u64>) -> String {
        let key = ApiKey::generate().unwrap();
        let record = KeyRecord::new(
            &key,
            "test",
            Scopes::parse(scopes).unwrap(),
            self.clock.seconds(),
            expires_at,
        );
        assert!(self.app.store.create_key(&record).await.unwrap());
        key.expose().expose_secret().to_owned()
    }

    /// Breaks the stored item of `api_key` by hand (its scopes become a
    /// number), so that every read of it is a 500.
    pub async fn corrupt_key_item(&self, api_key: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let id = &api_key["bauth_".len().."bauth_".len() + 16];
        self.dynamodb()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("KEY#{id}")))
            .key("sk", AttributeValue::S("KEY".into()))
            .update_expression("SET scopes = :n")
            .expression_attribute_values(":n", AttributeValue::N("7".into()))
            .send()
            .await
            .unwrap();
    }

    /// The store under test.
    pub fn store(&self) -> &dyn Store {
        self.app.store.as_ref()
    }

    /// A raw DynamoDB client on moto.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Any request, through the handler serving every route.
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        self.request_to(Route::ALL, method, uri, headers, body)
            .await
    }

    /// Any request, through a handler serving only `routes` (as one Lambda does).
    pub async fn request_to(
        &self,
        routes: &[Route],
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = if body.is_empty() {
            Body::Empty
        } else {
            Body::Text(body.to_owned())
        };
        let response = http::handle(&self.app, "test", routes, builder.body(body).unwrap()).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8(b.clone()).unwrap(),
            Body::Empty => String::new(),
            _ => panic!("unexpected body type"),
        };
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/json",
            "{text}"
        );
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// `POST /auth/login` with a JSON body.
    pub async fn login(&self, body: Value) -> TestResponse {
        self.post_json("/auth/login", &body).await
    }

    /// `POST /auth/login` with a form body.
    pub async fn login_form(&self, form: &str) -> TestResponse {
        self.request(
            Method::POST,
            "/auth/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await
    }

    /// Logs in to `session` with all of the key's scopes and returns the token.
    pub async fn token(&self, api_key: &str, session: &str) -> String {
        self.login(serde_json::json!({"api_key": api_key, "session_id": session}))
            .await
            .token()
    }

    /// `GET /auth/verify` with a bearer token and optional required scope.
    pub async fn verify(&self, token: &str, scope: Option<&str>) -> TestResponse {
        let uri = match scope {
            Some(s) => format!("/auth/verify?scope={}", s.replace(' ', "%20")),
            None => "/auth/verify".to_owned(),
        };
        let auth = format!("Bearer {token}");
        self.request(Method::GET, &uri, &[("authorization", &auth)], "")
            .await
    }

    /// `POST /auth/revoke` with a JSON body.
    pub async fn revoke(&self, body: Value) -> TestResponse {
        self.post_json("/auth/revoke", &body).await
    }

    /// `POST /auth/revoke` with a bearer token and no body.
    pub async fn revoke_bearer(&self, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request(
            Method::POST,
            "/auth/revoke",
            &[("authorization", &auth)],
            "",
        )
        .await
    }

    /// POSTs a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .await
    }
}

/// Creates a signing secret `{"key": key}` and returns its ARN. A retry is
/// safe: the SDK sends one ClientRequestToken across its attempts, so a retry
/// whose first attempt landed gets the secret back, not ResourceExistsException.
pub async fn create_secret(sdk: &SdkConfig, key: &str) -> String {
    let value = serde_json::json!({ "key": key }).to_string();
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(unique("signing"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap()
}

/// A key ring on `secret_arn` with the default cache.
pub fn key_ring(sdk: &SdkConfig, secret_arn: &str) -> KeyRing {
    let source = SecretsManagerKeySource::new(aws_sdk_secretsmanager::Client::new(sdk), secret_arn);
    KeyRing::new(Arc::new(source), Duration::from_secs(300))
}

/// Log output captured from the subscriber the binaries use.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Installs the JSON subscriber writing here, for the current thread
    /// (a current-thread tokio test keeps all its work there).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        // With one registered dispatcher, tracing decides whether a callsite
        // is wanted from whichever thread reaches it first; another test's
        // thread, which has no subscriber, would mark our log line "never".
        // A second dispatcher, kept for the whole run, makes every thread ask
        // all live subscribers, ours included.
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let me = self.clone();
        tracing::subscriber::set_default(auth_shared::telemetry::subscriber(move || me.clone()))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The configuration of a test environment: keys cached for 300 s, as deployed.
fn config(table: &str, secret_arn: &str, tokens: TokenPolicy) -> Config {
    Config {
        table_name: table.to_owned(),
        signing_secret_arn: secret_arn.to_owned(),
        signing_key_cache: Duration::from_secs(300),
        tokens,
    }
}
