//! The integration test harness. A [`TestApp`] is the real handler code on
//! the embedded SQLite store in its own temporary directory, with fixed
//! signing keys and a manual clock: it needs nothing running, so the fast
//! layer (`cargo test`) is every test that does not need AWS behaviour.
//! [`aws::AwsTestApp`] is the same service on its own DynamoDB table and
//! Secrets Manager secret in moto, for the AWS layer (`--features moto`,
//! which `scripts/test` runs against a moto it starts). Either way, tests
//! run in parallel and in any order, and nothing here is a mock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

pub mod authorizer;
pub mod aws;
pub mod expect;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_shared::App;
use auth_shared::config::TokenPolicy;
use auth_shared::domain::admin::{self, NewKey};
use auth_shared::domain::api_key::KeyRecord;
use auth_shared::domain::audit::{Actor, AuditEvent, Origin, Stamp};
use auth_shared::domain::owner::{Meta, Owner};

use auth_shared::domain::clock::{Clock, ManualClock};
use auth_shared::domain::keyring::{KeyRing, KeySet, SigningKey, StaticKeySource};
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::store::Store;
use auth_shared::http::{self, Route};
use auth_shared::local::sqlite::SqliteStore;
use lambda_http::Body;
use lambda_http::http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use auth_shared;
pub use expect::StolenKey;

/// The issuer every test app signs with.
pub const ISSUER: &str = "https://auth.test";

/// How long an app caches its signing keys, as deployed.
pub const KEY_CACHE: Duration = Duration::from_secs(300);

/// Where the tests' own key changes come from.
pub fn origin() -> Origin {
    Origin::of(Actor::cli("test@host"))
}

/// The tests' own change at `now_ms`, its event kept 400 days.
pub fn stamp_at(now_ms: u64) -> Stamp {
    Stamp {
        origin: origin(),
        now_ms,
        retention_days: 400,
    }
}

/// The tests' own change, now.
pub fn stamp() -> Stamp {
    stamp_at(now_ms())
}

/// The event the tests' own write of `record` records, as if new.
pub fn event(record: &KeyRecord) -> AuditEvent {
    AuditEvent::of_change(None, record, &stamp_at(record.created_at * 1000)).unwrap()
}

/// The system clock in Unix milliseconds, for events of the tests' own writes.
pub fn now_ms() -> u64 {
    auth_shared::domain::clock::SystemClock.now_ms().unwrap()
}

/// The event the tests' own revoke of session `session` of `key` records.
pub fn session_event(key: &auth_shared::domain::api_key::KeyId, session: &str) -> AuditEvent {
    AuditEvent::of_session_revoke(key, None, session, &stamp())
}

/// A unique name for a table or secret.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One test's service: the real handlers on a fresh SQLite database.
pub struct TestApp {
    /// The state the handlers run on; tests may swap parts of it.
    pub app: App,
    /// Time as the handlers see it.
    pub clock: Arc<ManualClock>,
    /// The signing key in force, as someone who stole it would hold it.
    pub signing_key: StolenKey,
    /// The directory of the embedded store, deleted with the app (none on DynamoDB).
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
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join(DATABASE)).unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let signing_key = StolenKey {
            kid: uuid::Uuid::new_v4().to_string(),
            secret: "s".repeat(48),
        };
        let app = App::new(
            policy,
            Arc::new(store),
            Arc::new(StaticKeySource(key_set(&signing_key))),
            KEY_CACHE,
            clock.clone(),
        );
        Self {
            app,
            clock,
            signing_key,
            data_dir: Some(dir),
        }
    }

    /// Signs and verifies with `secret` (a fresh kid) from now on.
    pub fn use_signing_key(&mut self, secret: &str) {
        self.signing_key = StolenKey {
            kid: uuid::Uuid::new_v4().to_string(),
            secret: secret.to_owned(),
        };
        let source = StaticKeySource(key_set(&self.signing_key));
        self.app.keys = Arc::new(KeyRing::new(Arc::new(source), KEY_CACHE));
    }

    /// The SQLite database file of this app.
    pub fn database(&self) -> PathBuf {
        self.data_dir
            .as_ref()
            .expect("an app on the embedded store")
            .path()
            .join(DATABASE)
    }

    /// Where the store keeps its data, as an error message must never name it.
    pub fn store_location(&self) -> String {
        self.database().display().to_string()
    }

    /// Creates an API key with `scopes` and returns it as its owner would get it.
    pub async fn create_key(&self, scopes: &str) -> String {
        self.create_key_expiring(scopes, None).await
    }

    /// Creates an API key that expires at `expires_at`.
    pub async fn create_key_expiring(&self, scopes: &str, expires_at: Option<u64>) -> String {
        self.create_key_with(NewKey {
            name: "test".into(),
            scopes: Scopes::parse(scopes).unwrap(),
            owner: None,
            meta: None,
            expires_at,
        })
        .await
    }

    /// Creates an API key of an owner, with metadata.
    pub async fn create_owned_key(&self, scopes: &str, owner: &str, meta: Value) -> String {
        self.create_key_with(NewKey {
            name: "test".into(),
            scopes: Scopes::parse(scopes).unwrap(),
            owner: Some(Owner::parse(owner).unwrap()),
            meta: Some(Meta::new(meta).unwrap()),
            expires_at: None,
        })
        .await
    }

    /// Creates `new` as key administration does, and returns the key.
    pub async fn create_key_with(&self, new: NewKey) -> String {
        let (key, _) = admin::create(self.store(), new, &stamp_at(self.clock.now_ms().unwrap()))
            .await
            .unwrap();
        key.expose().expose_secret().to_owned()
    }

    /// Breaks the stored row of `api_key` by hand (its scopes become
    /// text no scope parses from), so that every read of it is a 500.
    pub async fn corrupt_key_item(&self, api_key: &str) {
        let id = expect::key_id(api_key);
        let db = rusqlite::Connection::open(self.database()).unwrap();
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        let changed = db
            .execute(
                "UPDATE keys SET record = json_set(record, '$.scopes', 'not \"a scope') WHERE id = ?1",
                [id],
            )
            .unwrap();
        assert_eq!(changed, 1, "no row for key {id}");
    }

    /// The store under test.
    pub fn store(&self) -> &dyn Store {
        self.app.store.as_ref()
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

/// The database file name inside an app's directory.
const DATABASE: &str = "auth.db";

/// The keys of `key`: it signs and verifies, with no previous key.
fn key_set(key: &StolenKey) -> KeySet {
    let secret = SecretString::from(key.secret.clone());
    KeySet {
        current: Arc::new(SigningKey::new(&key.kid, &secret).unwrap()),
        previous: None,
    }
}
