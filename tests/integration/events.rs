//! The HTTP API (payload 2.0) event fixtures of `events/`, which `sam local
//! invoke -e` and `cargo lambda invoke --data-file` send to the real binaries:
//! each must deserialize the way lambda_http deserializes a Lambda payload,
//! as an HTTP API event, and reach its route in the function that serves it.
//! `__API_KEY__` and `__TOKEN__` are placeholders, filled in here with a real
//! key and token to drive the whole flow.

use std::path::Path;

use auth_shared::http::{self, Route};
use auth_tests::TestApp;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request};
use serde_json::{Value, json};

/// The fixture `events/<name>.json`, with each placeholder replaced by its
/// value (also inside a base64-encoded body), as lambda_http hands it to a
/// handler.
fn fixture(name: &str, values: &[(&str, &str)]) -> Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fill = |s: &str| {
        values
            .iter()
            .fold(s.to_owned(), |s, (from, to)| s.replace(from, to))
    };
    let mut event: Value = serde_json::from_str(&text).unwrap();
    if event["isBase64Encoded"] == json!(true) {
        let body = STANDARD.decode(event["body"].as_str().unwrap()).unwrap();
        event["body"] = json!(STANDARD.encode(fill(std::str::from_utf8(&body).unwrap())));
    }
    let raw: LambdaRequest = serde_json::from_str(&fill(&event.to_string()))
        .unwrap_or_else(|e| panic!("{name}.json is no Lambda HTTP event: {e}"));
    // lambda_http tries the REST (v1) shape first: a fixture that also fits
    // it would reach the function as a REST event.
    assert!(
        matches!(raw, LambdaRequest::ApiGatewayV2(_)),
        "{name}.json is not an HTTP API v2 event: {raw:?}"
    );
    raw.into()
}

/// The Lambda that serves the fixture `name` answers it: (status, body).
async fn invoke(t: &TestApp, name: &str, values: &[(&str, &str)]) -> (u16, Value) {
    let (function, routes) = match name.split('-').next().unwrap() {
        "login" => ("login", Route::LOGIN),
        "verify" => ("verify", Route::VERIFY),
        "revoke" => ("revoke", Route::REVOKE),
        other => panic!("no function serves {other}"),
    };
    let response = http::handle(&t.app, function, routes, fixture(name, values)).await;
    let text = match response.body() {
        Body::Text(text) => text.clone(),
        other => panic!("{name}: not a text body: {other:?}"),
    };
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON: {text}"));
    (response.status().as_u16(), body)
}

#[tokio::test]
async fn every_fixture_as_written_reaches_its_route() {
    let t = TestApp::spawn().await;
    for (name, status, error) in [
        ("login", 401, "invalid_client"),
        ("login-form", 401, "invalid_client"),
        ("verify", 401, "invalid_token"),
        ("verify-post", 401, "invalid_token"),
        ("revoke", 401, "invalid_client"),
    ] {
        let (got, body) = invoke(&t, name, &[]).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{name}: {body}"
        );
    }
    let (status, body) = invoke(&t, "verify", &[]).await;
    assert_eq!((status, &body["active"]), (401, &json!(false)), "{body}");
    // RFC 7009: revoking a token that is not ours is a success that revokes nothing.
    assert_eq!(
        invoke(&t, "revoke-token", &[]).await,
        (200, json!({"revoked": true, "sessions_revoked": 0}))
    );
}

#[tokio::test]
async fn the_fixtures_with_a_real_key_log_in_verify_and_revoke() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let with_key = [("__API_KEY__", key.as_str())];

    let (status, json_login) = invoke(&t, "login", &with_key).await;
    assert_eq!(status, 200, "{json_login}");
    assert_eq!(
        (&json_login["session_id"], &json_login["scope"]),
        (&json!("worker-1"), &json!("read"))
    );
    let (status, form_login) = invoke(&t, "login-form", &with_key).await;
    assert_eq!(status, 200, "{form_login}");
    assert_eq!(
        (&form_login["session_id"], &form_login["scope"]),
        (&json!("worker-2"), &json!("read write"))
    );
    let worker_1 = json_login["access_token"].as_str().unwrap();
    let worker_2 = form_login["access_token"].as_str().unwrap();

    let (status, body) = invoke(&t, "verify", &[("__TOKEN__", worker_1)]).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    assert_eq!(body["session_id"], "worker-1");
    let (status, body) = invoke(&t, "verify-post", &[("__TOKEN__", worker_2)]).await;
    assert_eq!(
        (status, &body["session_id"]),
        (200, &json!("worker-2")),
        "{body}"
    );

    assert_eq!(
        invoke(&t, "revoke-token", &[("__TOKEN__", worker_2)]).await,
        (200, json!({"revoked": true, "sessions_revoked": 1}))
    );
    let (status, body) = invoke(&t, "verify-post", &[("__TOKEN__", worker_2)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    assert_eq!(
        invoke(&t, "revoke", &with_key).await,
        (200, json!({"revoked": true, "sessions_revoked": 1}))
    );
    let (status, body) = invoke(&t, "verify", &[("__TOKEN__", worker_1)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
}
