//! The log of a full login / verify / revoke run: one JSON line per request
//! with the fields README.md's "Logs" section lists, and never an API key, a
//! token or the signing key.
//!
//! `#[tokio::test]` runs on one thread, so the thread-local subscriber of
//! `CapturedLogs` sees everything the handlers log.

use auth_shared::domain::api_key::ApiKey;
use auth_tests::{CapturedLogs, TestApp};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::verify::{key_id, key_secret, stolen_key};

/// What one request's log line should say.
struct Expected {
    route: &'static str,
    status: u16,
    error: Option<&'static str>,
    key_id: Option<String>,
    session_id: Option<&'static str>,
}

fn expect(
    route: &'static str,
    status: u16,
    error: Option<&'static str>,
    key_id: Option<&str>,
    session_id: Option<&'static str>,
) -> Expected {
    Expected {
        route,
        status,
        error,
        key_id: key_id.map(str::to_owned),
        session_id,
    }
}

fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

#[tokio::test]
async fn a_full_run_logs_one_json_line_per_request_and_no_secret() {
    let mut t = TestApp::spawn().await;
    // A signing key of our own, random, so that finding it in the log means something.
    let signing_key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    t.use_signing_key(&signing_key);
    let stolen = stolen_key(&t).await;
    assert_eq!(stolen.secret, signing_key);

    let key = t.create_key("read write").await;
    let id = key_id(&key).to_owned();
    let wrong_key = ApiKey::regenerate(ApiKey::parse(&key).unwrap().id())
        .unwrap()
        .expose()
        .expose_secret()
        .to_owned();

    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let mut expected = Vec::new();

    let first = t.token(&key, "s1").await;
    expected.push(expect("/auth/login", 200, None, Some(&id), Some("s1")));
    assert_eq!(t.verify(&first, Some("read")).await.status, 200);
    expected.push(expect("/auth/verify", 200, None, Some(&id), Some("s1")));
    assert_eq!(t.revoke_bearer(&first).await.status, 200);
    expected.push(expect("/auth/revoke", 200, None, Some(&id), Some("s1")));
    assert_eq!(t.verify(&first, None).await.status, 401);
    expected.push(expect(
        "/auth/verify",
        401,
        Some("invalid_token"),
        Some(&id),
        Some("s1"),
    ));
    let second = t.token(&key, "s2").await;
    expected.push(expect("/auth/login", 200, None, Some(&id), Some("s2")));
    let r = t
        .revoke(json!({"api_key": key, "revoke_api_key": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    expected.push(expect("/auth/revoke", 200, None, Some(&id), None));
    let r = t.login(json!({"api_key": wrong_key})).await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    expected.push(expect(
        "/auth/login",
        401,
        Some("invalid_client"),
        Some(&id),
        Some("default"),
    ));
    let r = t.login(json!({"api_key": "bauth_garbage"})).await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    expected.push(expect(
        "/auth/login",
        401,
        Some("invalid_client"),
        None,
        None,
    ));

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(
        requests.len(),
        expected.len(),
        "one line per request:\n{text}"
    );

    let mut request_ids = Vec::new();
    for (line, want) in requests.iter().zip(&expected) {
        assert_eq!(line["function"], "test", "{line}");
        assert_eq!(line["route"], want.route, "{line}");
        assert_eq!(line["status"], want.status, "{line}");
        let outcome = if want.error.is_some() { "error" } else { "ok" };
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["error"].as_str(), want.error, "{line}");
        assert_eq!(line["key_id"].as_str(), want.key_id.as_deref(), "{line}");
        assert_eq!(line["session_id"].as_str(), want.session_id, "{line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        let request_id = line["request_id"].as_str().unwrap_or_default();
        assert!(!request_id.is_empty(), "{line}");
        request_ids.push(request_id.to_owned());
    }
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), expected.len(), "request ids are unique");

    for (what, secret) in [
        ("API key", key.as_str()),
        ("API key secret", key_secret(&key)),
        ("wrong API key", wrong_key.as_str()),
        ("wrong API key secret", key_secret(&wrong_key)),
        ("token", first.as_str()),
        ("token signature", signature_of(&first)),
        ("second token", second.as_str()),
        ("second token signature", signature_of(&second)),
        ("signing key", signing_key.as_str()),
    ] {
        assert!(!text.contains(secret), "the log holds the {what}:\n{text}");
    }
}
