//! The error table in README.md, row by row (the `invalid_token` and
//! `insufficient_scope` rows live in `verify`, the 500 row in `corrupt`, the
//! 503 row in the AWS layer's `outages`):
//! status, code, headers, and a body that never carries internal detail or
//! the API key that was sent.

use auth_shared::domain::api_key::ApiKey;
use auth_shared::http::Route;
pub(crate) use auth_tests::expect::assert_error;
use auth_tests::{TestApp, TestResponse};
use lambda_http::http::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::verify::{key_id, key_secret};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post(t: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
    t.request(Method::POST, path, headers, body).await
}

#[tokio::test]
async fn malformed_json_is_400_invalid_request() {
    let t = TestApp::spawn().await;
    for path in ["/auth/login", "/auth/verify", "/auth/revoke"] {
        let r = post(&t, path, &[JSON], r#"{"api_key": "#).await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_400_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    for body in [json!([{"api_key": key}]), json!(key), json!(7)] {
        let r = post(&t, "/auth/login", &[JSON], &body.to_string()).await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_mistyped_or_missing_field_is_400_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    for (path, body) in [
        ("/auth/login", json!({"api_key": 7})),
        ("/auth/login", json!({"api_key": [key]})),
        ("/auth/login", json!({"api_key": key, "session_id": 1})),
        ("/auth/login", json!({"api_key": key, "scope": ["read"]})),
        ("/auth/login", json!({"session_id": "default"})),
        (
            "/auth/revoke",
            json!({"api_key": key, "all_sessions": "yes"}),
        ),
        ("/auth/verify", json!({"token": 7})),
    ] {
        let r = t.post_json(path, &body).await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = t.login_form(&format!("api_key={key}&api_key={key}")).await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn a_bad_session_id_is_400_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let too_long = "a".repeat(129);
    for session in ["", "a b", "a/b", "SESSION#x", "ä", too_long.as_str()] {
        let r = t
            .login(json!({"api_key": key, "session_id": session}))
            .await;
        assert_error(&r, 400, "invalid_request");
        let r = t
            .revoke(json!({"api_key": key, "session_id": session}))
            .await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_scope_the_key_lacks_or_a_malformed_scope_is_400_invalid_scope() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    for scope in ["admin", "read write", "", "read  write", "a\"b"] {
        let r = t.login(json!({"api_key": key, "scope": scope})).await;
        assert_error(&r, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn an_unknown_malformed_revoked_expired_or_wrong_api_key_is_401_with_one_message() {
    let t = TestApp::spawn().await;
    let revoked = t.create_key("read").await;
    let r = t
        .revoke(json!({"api_key": revoked, "revoke_api_key": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let expired = t
        .create_key_expiring("read", Some(t.clock.seconds() + 60))
        .await;
    t.clock.advance(60);
    let real = t.create_key("read").await;
    let parsed = ApiKey::parse(&real).unwrap();
    let wrong_secret = ApiKey::regenerate(parsed.id()).unwrap();
    let wrong_secret = wrong_secret.expose().expose_secret().to_owned();
    let unknown = ApiKey::generate()
        .unwrap()
        .expose()
        .expose_secret()
        .to_owned();
    let mut bad_checksum = real.clone();
    bad_checksum.replace_range(
        real.len() - 1..,
        if real.ends_with('0') { "1" } else { "0" },
    );

    let mut descriptions = Vec::new();
    for key in [
        unknown.as_str(),
        "bauth_not-a-key",
        bad_checksum.as_str(),
        wrong_secret.as_str(),
        revoked.as_str(),
        expired.as_str(),
    ] {
        let r = t.login(json!({"api_key": key})).await;
        assert_error(&r, 401, "invalid_client");
        descriptions.push(r.body["error_description"].clone());
    }
    descriptions.dedup();
    assert_eq!(
        descriptions.len(),
        1,
        "one message for all: {descriptions:?}"
    );

    let r = t
        .revoke(json!({"api_key": wrong_secret, "all_sessions": true}))
        .await;
    assert_error(&r, 401, "invalid_client");
    assert_eq!(t.login(json!({"api_key": real})).await.status, 200);
}

#[tokio::test]
async fn an_unknown_path_is_404_not_found() {
    let t = TestApp::spawn().await;
    for (method, path) in [
        (Method::POST, "/auth/nothing"),
        (Method::GET, "/"),
        (Method::POST, "/auth/login/extra"),
    ] {
        let r = t.request(method, path, &[JSON], "{}").await;
        assert_error(&r, 404, "not_found");
    }
}

#[tokio::test]
async fn a_route_another_lambda_serves_is_404_not_found() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    let auth = format!("Bearer {token}");
    let r = t
        .request_to(
            &[Route::Login],
            Method::GET,
            "/auth/verify",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = t
        .request_to(
            Route::VERIFY,
            Method::POST,
            "/auth/login",
            &[JSON],
            &json!({"api_key": key}).to_string(),
        )
        .await;
    assert_error(&r, 404, "not_found");
    // The same request where it is served.
    let r = t
        .request_to(
            Route::VERIFY,
            Method::GET,
            "/auth/verify",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_wrong_method_is_405_with_an_allow_header() {
    let t = TestApp::spawn().await;
    for (method, path, allow) in [
        (Method::GET, "/auth/login", "POST"),
        (Method::PUT, "/auth/verify", "GET, POST"),
        (Method::DELETE, "/auth/verify", "GET, POST"),
        (Method::GET, "/auth/revoke", "POST"),
    ] {
        let r = t.request(method.clone(), path, &[], "").await;
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn a_login_with_another_scope_in_a_live_session_is_409_session_conflict() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let first = t
        .login(json!({"api_key": key, "session_id": "s1", "scope": "read"}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let r = t
        .login(json!({"api_key": key, "session_id": "s1", "scope": "read write"}))
        .await;
    assert_error(&r, 409, "session_conflict");
    let r = t
        .login(json!({"api_key": key, "session_id": "s2", "scope": "read write"}))
        .await;
    assert_eq!(r.status, 200, "another session_id works: {:?}", r.body);
}

#[tokio::test]
async fn a_body_over_16_kib_is_413_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let body = json!({"api_key": key, "pad": "x".repeat(16 * 1024)}).to_string();
    for path in ["/auth/login", "/auth/verify", "/auth/revoke"] {
        let r = post(&t, path, &[JSON], &body).await;
        assert_error(&r, 413, "invalid_request");
    }
    // Just under the cap is parsed (and the extra field ignored).
    let pad = 16 * 1024 - json!({"api_key": key, "pad": ""}).to_string().len();
    let body = json!({"api_key": key, "pad": "x".repeat(pad)}).to_string();
    assert_eq!(body.len(), 16 * 1024);
    assert_eq!(post(&t, "/auth/login", &[JSON], &body).await.status, 200);
}

#[tokio::test]
async fn a_body_that_is_not_json_or_form_is_415_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let body = json!({"api_key": key}).to_string();
    for headers in [
        &[("content-type", "text/plain")][..],
        &[("content-type", "application/xml")][..],
        &[][..],
    ] {
        let r = post(&t, "/auth/login", headers, &body).await;
        assert_error(&r, 415, "invalid_request");
    }
    let r = post(&t, "/auth/login", &[JSON], &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn error_bodies_never_echo_the_api_key_sent() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let too_long = format!("{key}{}", "x".repeat(16 * 1024));
    let tampered = key.replacen(key_id(&key), "0000000000000000", 1);
    let json = |v: Value| v.to_string();
    // Each with the row of the error table it falls under.
    let cases = [
        (
            "/auth/login",
            JSON.1,
            json(json!({"api_key": key, "scope": "admin"})),
            (400, "invalid_scope"),
        ),
        (
            "/auth/login",
            JSON.1,
            json(json!({"api_key": key, "session_id": "a b"})),
            (400, "invalid_request"),
        ),
        (
            "/auth/login",
            JSON.1,
            json(json!({"api_key": [key]})),
            (400, "invalid_request"),
        ),
        (
            "/auth/login",
            JSON.1,
            json(json!({"api_key": tampered})),
            (401, "invalid_client"),
        ),
        (
            "/auth/login",
            JSON.1,
            json(json!({"api_key": too_long})),
            (413, "invalid_request"),
        ),
        (
            "/auth/login",
            JSON.1,
            format!("{{\"api_key\": \"{key}\""),
            (400, "invalid_request"),
        ),
        (
            "/auth/login",
            "text/plain",
            key.clone(),
            (415, "invalid_request"),
        ),
        (
            "/auth/revoke",
            JSON.1,
            json(json!({"api_key": key, "all_sessions": "yes"})),
            (400, "invalid_request"),
        ),
        (
            "/auth/revoke",
            JSON.1,
            json(json!({"api_key": key, "token": "t"})),
            (400, "invalid_request"),
        ),
        (
            "/auth/nothing",
            JSON.1,
            json(json!({"api_key": key})),
            (404, "not_found"),
        ),
    ];
    for (path, content_type, body, (status, code)) in &cases {
        let r = post(&t, path, &[("content-type", content_type)], body).await;
        assert_error(&r, *status, code);
        let text = r.body.to_string();
        assert!(!text.contains(key_secret(&key)), "{path}: {text}");
    }
}

#[tokio::test]
async fn every_error_has_its_own_request_id() {
    let t = TestApp::spawn().await;
    let a = t.request(Method::GET, "/nowhere", &[], "").await;
    let b = t.request(Method::GET, "/nowhere", &[], "").await;
    assert_error(&a, 404, "not_found");
    assert_error(&b, 404, "not_found");
    assert_ne!(a.body["request_id"], b.body["request_id"]);
}
