//! `POST /auth/login`: the token response, and the rules of a login as a
//! client sees them: lifetime, reuse, the refresh window, scopes, a new token
//! after a revoke or expiry; then every API key and request that is refused.
//! One token under concurrency and nothing usable in the table are checked
//! on DynamoDB, in the AWS layer.

use std::collections::HashSet;

use auth_shared::config::TokenPolicy;
use auth_shared::domain::api_key::{ApiKey, KeyId, KeyStatus};
use auth_shared::domain::token::TokenError;
use auth_tests::expect::issued;
use auth_tests::{ISSUER, TestApp};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::errors::assert_error;
use crate::verify::{assert_invalid_token, claims_of, key_id};

/// The default token lifetime, refresh window and clock leeway.
const TTL: u64 = 7200;
const WINDOW: u64 = 300;
const LEEWAY: u64 = 30;

/// A service and an API key holding `scopes`.
async fn keyed(scopes: &str) -> (TestApp, String) {
    let t = TestApp::spawn().await;
    let key = t.create_key(scopes).await;
    (t, key)
}

/// Asserts that `token` verifies.
pub(crate) async fn assert_active(t: &TestApp, token: &str) {
    let r = t.verify(token, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
}

/// Asserts that `token` is refused because its session no longer holds it.
pub(crate) async fn assert_revoked(t: &TestApp, token: &str) {
    assert_invalid_token(&t.verify(token, None).await, TokenError::Revoked);
}

#[tokio::test]
async fn a_login_returns_an_uncached_bearer_token_with_all_the_keys_scopes_in_the_default_session()
{
    let (t, key) = keyed("write read").await;
    let r = t.login(json!({"api_key": key})).await;
    let token = issued(&r, TTL, "read write", "default");

    let v = t.verify(&token, Some("read write")).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["sub"], key_id(&key));
    assert_eq!(v.body["session_id"], "default");
}

#[tokio::test]
async fn a_form_encoded_login_answers_as_a_json_one_does() {
    let (t, key) = keyed("read write").await;
    let form = t
        .login_form(&format!(
            "api_key={key}&session_id=worker-1&scope=write+read"
        ))
        .await;
    let token = issued(&form, TTL, "read write", "worker-1");

    let json = t
        .login(json!({"api_key": key, "session_id": "worker-1", "scope": "read write"}))
        .await;
    assert_eq!(issued(&json, TTL, "read write", "worker-1"), token);
}

#[tokio::test]
async fn a_second_login_in_a_session_returns_the_same_token_with_the_time_it_has_left() {
    let (t, key) = keyed("read").await;
    let first = t.token(&key, "default").await;

    let again = t.login(json!({"api_key": key})).await;
    assert_eq!(issued(&again, TTL, "read", "default"), first);

    t.clock.advance(1000);
    let later = t.login(json!({"api_key": key})).await;
    assert_eq!(issued(&later, TTL - 1000, "read", "default"), first);
}

#[tokio::test]
async fn another_session_id_gets_its_own_token_and_both_verify() {
    let (t, key) = keyed("read").await;
    let first = t.token(&key, "default").await;
    let r = t
        .login(json!({"api_key": key, "session_id": "worker-2"}))
        .await;
    let second = issued(&r, TTL, "read", "worker-2");

    assert_ne!(first, second);
    assert_active(&t, &first).await;
    assert_eq!(t.verify(&second, None).await.body["session_id"], "worker-2");
}

#[tokio::test]
async fn inside_the_refresh_window_login_mints_a_successor_and_the_predecessor_lives_until_its_expiry()
 {
    let (t, key) = keyed("read").await;
    let login = || t.login(json!({"api_key": key}));
    let first = t.token(&key, "default").await;

    t.clock.advance(TTL - WINDOW - 1);
    assert_eq!(issued(&login().await, WINDOW + 1, "read", "default"), first);

    t.clock.advance(1);
    let successor = issued(&login().await, TTL, "read", "default");
    assert_ne!(successor, first);
    assert_eq!(issued(&login().await, TTL, "read", "default"), successor);

    t.clock.advance(WINDOW - 1);
    assert_active(&t, &first).await;
    assert_active(&t, &successor).await;

    t.clock.advance(1 + LEEWAY);
    assert_invalid_token(&t.verify(&first, None).await, TokenError::Expired);
    assert_active(&t, &successor).await;
    let reused = login().await;
    assert_eq!(
        issued(&reused, TTL - WINDOW - LEEWAY, "read", "default"),
        successor
    );
}

#[tokio::test]
async fn with_no_refresh_window_login_reuses_the_token_until_it_expires() {
    let t = TestApp::spawn_with(TokenPolicy {
        refresh_window_seconds: 0,
        ..TokenPolicy::with_issuer(ISSUER)
    })
    .await;
    let key = t.create_key("read").await;
    let first = t.token(&key, "default").await;

    t.clock.advance(TTL - 1);
    let last_second = t.login(json!({"api_key": key})).await;
    assert_eq!(issued(&last_second, 1, "read", "default"), first);

    t.clock.advance(1);
    let next = t.login(json!({"api_key": key})).await;
    assert_ne!(issued(&next, TTL, "read", "default"), first);
}

#[tokio::test]
async fn a_login_may_ask_for_a_subset_of_the_keys_scopes() {
    let (t, key) = keyed("read write documents:read").await;
    let r = t
        .login(json!({"api_key": key, "scope": "documents:read read"}))
        .await;
    let token = issued(&r, TTL, "documents:read read", "default");

    assert_eq!(t.verify(&token, Some("read")).await.status, 200);
    let r = t.verify(&token, Some("write")).await;
    assert_eq!((r.status, r.error()), (403, "insufficient_scope"));
}

#[tokio::test]
async fn a_scope_the_key_lacks_is_400_invalid_scope_and_leaves_the_session_free() {
    let (t, key) = keyed("read write").await;
    let r = t
        .login(json!({"api_key": key, "scope": "read admin"}))
        .await;
    assert_error(&r, 400, "invalid_scope");
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("admin")),
        "{:?}",
        r.body
    );

    let r = t.login(json!({"api_key": key, "scope": "write"})).await;
    issued(&r, TTL, "write", "default");
}

#[tokio::test]
async fn a_malformed_scope_is_400_invalid_scope() {
    let (t, key) = keyed("read write").await;
    for scope in ["", " ", "read  write", "read ", "a\"b", "a\\b"] {
        let r = t.login(json!({"api_key": key, "scope": scope})).await;
        assert_error(&r, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn the_same_scopes_in_another_order_reuse_the_sessions_token() {
    let (t, key) = keyed("read write").await;
    let r = t
        .login(json!({"api_key": key, "scope": "write read"}))
        .await;
    let token = issued(&r, TTL, "read write", "default");

    for scope in [json!("read write"), json!("write read write"), Value::Null] {
        let r = t.login(json!({"api_key": key, "scope": scope})).await;
        assert_eq!(issued(&r, TTL, "read write", "default"), token, "{scope}");
    }
}

#[tokio::test]
async fn another_scope_in_a_session_with_a_live_token_is_409_but_works_in_another_session() {
    let (t, key) = keyed("read write").await;
    let token = t.token(&key, "default").await;

    let r = t.login(json!({"api_key": key, "scope": "read"})).await;
    assert_error(&r, 409, "session_conflict");
    assert_active(&t, &token).await;

    let r = t
        .login(json!({"api_key": key, "scope": "read", "session_id": "readers"}))
        .await;
    issued(&r, TTL, "read", "readers");
}

#[tokio::test]
async fn after_a_session_revoke_the_next_login_mints_a_new_token_and_the_revoked_one_stays_invalid()
{
    let (t, key) = keyed("read").await;
    let first = t.token(&key, "worker-1").await;
    let r = t
        .revoke(json!({"api_key": key, "session_id": "worker-1"}))
        .await;
    assert_eq!(r.body["sessions_revoked"], 1, "{:?}", r.body);

    let r = t
        .login(json!({"api_key": key, "session_id": "worker-1"}))
        .await;
    let second = issued(&r, TTL, "read", "worker-1");
    assert_ne!(second, first);
    assert_revoked(&t, &first).await;
    assert_active(&t, &second).await;
}

#[tokio::test]
async fn after_expiry_login_mints_a_new_token_though_the_expired_item_is_still_in_the_table() {
    let (t, key) = keyed("read write").await;
    let first = t.token(&key, "default").await;
    t.clock.advance(TTL + LEEWAY);

    let id = KeyId::parse(key_id(&key)).unwrap();
    let stale = t.store().list_sessions(&id).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].current.claims.jti, claims_of(&first)["jti"]);

    // Another scope, too: an expired token holds the session against nothing.
    let r = t.login(json!({"api_key": key, "scope": "read"})).await;
    let second = issued(&r, TTL, "read", "default");
    assert_ne!(second, first);
    assert_active(&t, &second).await;
    assert_invalid_token(&t.verify(&first, None).await, TokenError::Expired);
}

/// The API key as its owner would hold it.
fn exposed(key: &ApiKey) -> String {
    key.expose().expose_secret().to_owned()
}

#[tokio::test]
async fn every_unusable_api_key_is_401_invalid_client_with_one_description() {
    let t = TestApp::spawn().await;
    let real = t.create_key("read").await;
    let id = KeyId::parse(key_id(&real)).unwrap();
    let mut bad_checksum = real.clone();
    let last = if real.ends_with('0') { "1" } else { "0" };
    bad_checksum.replace_range(real.len() - 1.., last);

    let revoked = t.create_key("read").await;
    t.token(&revoked, "default").await;
    let revoked_id = KeyId::parse(key_id(&revoked)).unwrap();
    let mut record = t.store().key(&revoked_id).await.unwrap().unwrap();
    record.status = KeyStatus::Revoked;
    assert!(
        t.store()
            .save_key(&record, &auth_tests::event(&record))
            .await
            .unwrap()
    );

    let expired = t
        .create_key_expiring("read", Some(t.clock.seconds() + 60))
        .await;
    t.token(&expired, "default").await;
    t.clock.advance(60);

    let cases = [
        ("unknown key id", exposed(&ApiKey::generate().unwrap())),
        ("wrong secret", exposed(&ApiKey::regenerate(&id).unwrap())),
        ("bad checksum", bad_checksum),
        ("garbage", "hunter2".to_owned()),
        ("revoked", revoked),
        ("expired", expired),
    ];
    let mut descriptions = HashSet::new();
    for (case, api_key) in cases {
        let r = t.login(json!({"api_key": api_key})).await;
        assert_eq!((r.status, r.error()), (401, "invalid_client"), "{case}");
        assert_error(&r, 401, "invalid_client");
        descriptions.insert(r.body["error_description"].to_string());
    }
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
    issued(
        &t.login(json!({"api_key": real})).await,
        TTL,
        "read",
        "default",
    );
}

#[tokio::test]
async fn a_rotated_api_keys_old_secret_logs_in_during_the_grace_period_and_not_after() {
    let (t, old) = keyed("read").await;
    let id = KeyId::parse(key_id(&old)).unwrap();
    let new = ApiKey::regenerate(&id).unwrap();
    let mut record = t.store().key(&id).await.unwrap().unwrap();
    record.rotate(&new, t.clock.seconds(), 3600);
    assert!(
        t.store()
            .save_key(&record, &auth_tests::event(&record))
            .await
            .unwrap()
    );
    let new = exposed(&new);

    let token = t.token(&old, "default").await;
    assert_eq!(t.token(&new, "default").await, token);
    t.clock.advance(3599);
    assert_eq!(t.token(&old, "default").await, token);

    t.clock.advance(1);
    assert_error(
        &t.login(json!({"api_key": old})).await,
        401,
        "invalid_client",
    );
    assert_eq!(t.token(&new, "default").await, token);
}

#[tokio::test]
async fn a_login_without_an_api_key_is_400_invalid_request() {
    let (t, _) = keyed("read").await;
    for body in [
        json!({}),
        json!({"api_key": null}),
        json!({"session_id": "default"}),
    ] {
        assert_error(&t.login(body).await, 400, "invalid_request");
    }
    assert_error(
        &t.login_form("session_id=default").await,
        400,
        "invalid_request",
    );
    let empty = t
        .request(lambda_http::http::Method::POST, "/auth/login", &[], "")
        .await;
    assert_error(&empty, 400, "invalid_request");
}

#[tokio::test]
async fn an_api_key_that_is_not_a_string_is_400_invalid_request() {
    let (t, key) = keyed("read").await;
    for api_key in [json!(7), json!(true), json!([key]), json!({"key": key})] {
        let r = t.login(json!({"api_key": api_key})).await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_session_id_outside_1_to_128_allowed_characters_is_400_invalid_request() {
    let (t, key) = keyed("read").await;
    for session in ["a b", "#", "worker#1", &"a".repeat(129)] {
        let r = t
            .login(json!({"api_key": key, "session_id": session}))
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    assert_error(
        &t.login_form(&format!("api_key={key}&session_id=a+b")).await,
        400,
        "invalid_request",
    );

    let longest = format!("{}.~:-_Z9", "a".repeat(121));
    let r = t
        .login(json!({"api_key": key, "session_id": longest}))
        .await;
    issued(&r, TTL, "read", &longest);
}
