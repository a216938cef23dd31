//! Backends down or misconfigured: DynamoDB or Secrets Manager unreachable
//! answers 503 with `Retry-After` within seconds (verify fails closed), and a
//! signing secret of the wrong shape is a 500, never a token or a yes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_tests::TestResponse;
use auth_tests::aws::{AwsTestApp, dead_endpoint, key_ring};
use serde_json::{Value, json};

use auth_tests::expect::assert_error;

/// Far above the SDK's bounded retries (a few seconds); far below a Lambda timeout.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Runs `call`, asserting it answers promptly.
async fn timed(call: impl std::future::Future<Output = TestResponse>) -> TestResponse {
    let started = Instant::now();
    let r = call.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < PROMPTLY,
        "answered after {elapsed:?}: {:?}",
        r.body
    );
    r
}

fn assert_unavailable(r: &TestResponse) {
    assert_error(r, 503, "temporarily_unavailable");
    assert_ne!(r.body["active"], true, "verify must fail closed");
    assert!(r.body.get("access_token").is_none(), "{:?}", r.body);
    let retry_after = r.header("retry-after").unwrap_or_default();
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
}

/// A service with a key, a token issued while everything was up, and the key.
async fn issued() -> (AwsTestApp, String, String) {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    assert_eq!(t.verify(&token, None).await.status, 200);
    (t, key, token)
}

#[tokio::test]
async fn with_dynamodb_unreachable_login_is_503_with_retry_after() {
    let (mut t, key, _) = issued().await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        &t.table,
    ));
    let r = timed(t.login(json!({"api_key": key}))).await;
    assert_unavailable(&r);
    let r = timed(t.login(json!({"api_key": key, "session_id": "new"}))).await;
    assert_unavailable(&r);
}

#[tokio::test]
async fn with_dynamodb_unreachable_verify_of_a_good_token_is_503_never_active() {
    let (mut t, _, token) = issued().await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        &t.table,
    ));
    let r = timed(t.verify(&token, Some("read"))).await;
    assert_unavailable(&r);
    let r = timed(t.post_json("/auth/verify", &json!({"token": token}))).await;
    assert_unavailable(&r);
}

#[tokio::test]
async fn with_dynamodb_unreachable_revoke_is_503() {
    let (mut t, key, token) = issued().await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        &t.table,
    ));
    assert_unavailable(&timed(t.revoke_bearer(&token)).await);
    for body in [
        json!({"api_key": key, "session_id": "default"}),
        json!({"api_key": key, "all_sessions": true}),
        json!({"api_key": key, "revoke_api_key": true}),
    ] {
        assert_unavailable(&timed(t.revoke(body)).await);
    }
}

#[tokio::test]
async fn with_secrets_manager_unreachable_and_a_cold_key_ring_login_is_503() {
    let (mut t, key, _) = issued().await;
    let dead = dead_endpoint().await;
    t.app.keys = Arc::new(key_ring(&dead, &t.secret_arn));
    // Reusing the session's token needs its key; minting a new one needs the current key.
    assert_unavailable(&timed(t.login(json!({"api_key": key}))).await);
    assert_unavailable(&timed(t.login(json!({"api_key": key, "session_id": "new"}))).await);
}

#[tokio::test]
async fn with_secrets_manager_unreachable_and_a_cold_key_ring_verify_is_503() {
    let (mut t, _, token) = issued().await;
    let dead = dead_endpoint().await;
    t.app.keys = Arc::new(key_ring(&dead, &t.secret_arn));
    assert_unavailable(&timed(t.verify(&token, None)).await);
}

/// Creates a secret whose value is `value` as given, not wrapped in `{"key": ...}`.
async fn raw_secret(t: &AwsTestApp, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&t.sdk)
        .create_secret()
        .name(auth_tests::unique("misconfigured"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap()
}

#[tokio::test]
async fn a_signing_secret_of_the_wrong_shape_is_500_server_error_not_a_token() {
    let (mut t, key, token) = issued().await;
    let long = "k".repeat(48);
    let too_short = "k".repeat(31);
    for value in [
        json!({"password": long}).to_string(),
        json!({"key": too_short}).to_string(),
        json!({"key": 12345}).to_string(),
        json!([long]).to_string(),
        long.clone(),
    ] {
        let arn = raw_secret(&t, &value).await;
        t.app.keys = Arc::new(key_ring(&t.sdk, &arn));
        let login = t
            .login(json!({"api_key": key, "session_id": "fresh"}))
            .await;
        let verify = t.verify(&token, None).await;
        for r in [login, verify] {
            assert_eq!(r.status, 500, "{value}: {:?}", r.body);
            assert_error(&r, 500, "server_error");
            assert_ne!(r.body["active"], true, "{value}");
            let Value::Object(body) = &r.body else {
                panic!("not an object: {:?}", r.body)
            };
            assert_eq!(body.len(), 3, "{value}: {:?}", r.body);
            let text = r.body.to_string();
            // Either secret contains the shorter one.
            assert!(!text.contains(&too_short), "{text}");
        }
    }
}

#[tokio::test]
async fn a_host_clock_outside_any_plausible_time_is_503_never_a_token_or_a_yes() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "a").await;
    t.clock.set(0);
    let answers = [
        t.login(json!({"api_key": key, "session_id": "b"})).await,
        t.verify(&token, None).await,
        t.revoke(json!({"api_key": key, "all_sessions": true}))
            .await,
    ];
    for r in answers {
        assert_eq!(
            (r.status, r.error(), r.header("retry-after")),
            (503, "temporarily_unavailable", Some("1")),
            "{:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_503_counts_as_a_server_error_and_a_backend_unavailable() {
    use auth_shared::telemetry::metrics::Metric;
    crate::emf::publish();
    let (mut t, key, token) = issued().await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        &t.table,
    ));
    let logs = auth_tests::CapturedLogs::default();
    let _guard = logs.install();
    assert_unavailable(&timed(t.verify(&token, None)).await);
    assert_unavailable(&timed(t.login(json!({"api_key": key}))).await);
    let lines = crate::emf::request_lines(&logs.text());
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        assert_eq!(line["status"], 503, "{line}");
        assert_eq!(crate::emf::value(line, Metric::ServerErrors), 1.0, "{line}");
        assert_eq!(
            crate::emf::value(line, Metric::BackendUnavailable),
            1.0,
            "{line}"
        );
        assert_eq!(crate::emf::value(line, Metric::ClientErrors), 0.0, "{line}");
        assert_eq!(crate::emf::value(line, Metric::TokensReused), 0.0, "{line}");
    }
}
