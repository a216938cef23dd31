//! `POST /auth/revoke`: by token (RFC 7009: anything that is not ours is a
//! harmless 200), by named session, every session of a key, or the key
//! itself; each takes effect on the next verify and touches nothing else.

use auth_shared::domain::api_key::{ApiKey, KeyId};
use auth_tests::{TestApp, TestResponse};
use lambda_http::http::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::errors::assert_error;
use crate::login::{assert_active, assert_revoked};
use crate::verify::{StolenKey, b64, claims_of, key_id, stolen_key};

/// Asserts the 200 of a revoke that removed `sessions` sessions and not the key.
fn assert_done(r: &TestResponse, sessions: u64) {
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"revoked": true, "sessions_revoked": sessions})
    );
}

/// A service, an API key with `read`, and its tokens for `sessions`.
async fn sessions_of_a_key(sessions: &[&str]) -> (TestApp, String, Vec<String>) {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let mut tokens = Vec::new();
    for session in sessions {
        tokens.push(t.token(&key, session).await);
    }
    (t, key, tokens)
}

/// How a token to revoke is sent.
enum Sent {
    /// `Authorization: Bearer`, no body.
    AsBearer,
    /// `{"token": ...}`.
    InTheBody,
}

/// `base` with the fields of `changes` set.
fn patched(base: &Value, changes: Value) -> Value {
    let mut value = base.clone();
    if let (Some(fields), Value::Object(changes)) = (value.as_object_mut(), changes) {
        fields.extend(changes);
    }
    value
}

async fn revoke_token(t: &TestApp, token: &str, sent: Sent) -> TestResponse {
    match sent {
        Sent::AsBearer => t.revoke_bearer(token).await,
        Sent::InTheBody => t.revoke(json!({"token": token})).await,
    }
}

async fn a_token_revokes_its_session_and_no_other(sent: Sent) {
    let (t, key, tokens) = sessions_of_a_key(&["default", "worker-2"]).await;
    let other_key = t.create_key("read").await;
    let other = t.token(&other_key, "default").await;

    assert_done(&revoke_token(&t, &tokens[0], sent).await, 1);
    assert_revoked(&t, &tokens[0]).await;
    assert_active(&t, &tokens[1]).await;
    assert_active(&t, &other).await;
    assert_ne!(t.token(&key, "default").await, tokens[0]);
}

#[tokio::test]
async fn a_bearer_token_with_no_body_revokes_its_session_and_no_other() {
    a_token_revokes_its_session_and_no_other(Sent::AsBearer).await;
}

#[tokio::test]
async fn a_token_field_revokes_its_session_and_no_other() {
    a_token_revokes_its_session_and_no_other(Sent::InTheBody).await;
}

#[tokio::test]
async fn unknown_garbage_forged_or_expired_tokens_are_200_and_revoke_nothing() {
    let (t, _, tokens) = sessions_of_a_key(&["default"]).await;
    let live = &tokens[0];
    let real = stolen_key(&t).await;
    let header = real.header();
    let claims = claims_of(live);
    let other_key = StolenKey {
        kid: real.kid.clone(),
        secret: "x".repeat(48),
    };
    let mut tampered: Vec<&str> = live.split('.').collect();
    let escalated = b64(&patched(&claims, json!({"scope": "admin"})));
    tampered[1] = &escalated;

    let cases = [
        ("garbage", "not-a-token".to_owned()),
        (
            "never issued",
            real.forge(
                &header,
                &patched(&claims, json!({"sid": "never-issued", "jti": "j0"})),
            ),
        ),
        (
            "unknown kid",
            real.forge(&patched(&header, json!({"kid": "elsewhere"})), &claims),
        ),
        ("signed with another key", other_key.forge(&header, &claims)),
        ("tampered payload", tampered.join(".")),
    ];
    for (case, token) in cases {
        let r = t.revoke_bearer(&token).await;
        assert_eq!(r.status, 200, "{case}: {:?}", r.body);
        assert_done(&r, 0);
        assert_active(&t, live).await;
    }

    t.clock.advance(7200 + 30);
    assert_done(&t.revoke_bearer(live).await, 0);
}

#[tokio::test]
async fn a_revoked_token_revoked_again_is_200_and_revokes_nothing() {
    let (t, _, tokens) = sessions_of_a_key(&["default"]).await;
    assert_done(&t.revoke_bearer(&tokens[0]).await, 1);
    assert_done(&t.revoke_bearer(&tokens[0]).await, 0);
    assert_revoked(&t, &tokens[0]).await;
}

#[tokio::test]
async fn an_old_token_does_not_revoke_the_session_that_replaced_it() {
    let (t, key, tokens) = sessions_of_a_key(&["default"]).await;
    let old = &tokens[0];
    assert_done(&t.revoke(json!({"api_key": key})).await, 1);
    let new = t.token(&key, "default").await;
    assert_ne!(&new, old);

    assert_done(&t.revoke_bearer(old).await, 0);
    assert_active(&t, &new).await;
}

#[tokio::test]
async fn a_predecessor_still_in_its_lifetime_revokes_its_session_and_the_successor() {
    let (t, key, tokens) = sessions_of_a_key(&["default"]).await;
    t.clock.advance(7200 - 300);
    let successor = t.token(&key, "default").await;
    assert_ne!(successor, tokens[0]);

    assert_done(&t.revoke_bearer(&tokens[0]).await, 1);
    assert_revoked(&t, &tokens[0]).await;
    assert_revoked(&t, &successor).await;
}

#[tokio::test]
async fn revoking_a_named_session_ends_only_that_session_and_repeating_it_revokes_nothing() {
    let (t, key, tokens) = sessions_of_a_key(&["default", "worker-1", "worker-2"]).await;
    let body = json!({"api_key": key, "session_id": "worker-1"});

    assert_done(&t.revoke(body.clone()).await, 1);
    assert_revoked(&t, &tokens[1]).await;
    assert_active(&t, &tokens[0]).await;
    assert_active(&t, &tokens[2]).await;

    assert_done(&t.revoke(body).await, 0);
}

#[tokio::test]
async fn revoking_with_an_api_key_and_no_session_id_ends_the_default_session() {
    let (t, key, tokens) = sessions_of_a_key(&["default", "worker-1"]).await;
    assert_done(&t.revoke(json!({"api_key": key})).await, 1);
    assert_revoked(&t, &tokens[0]).await;
    assert_active(&t, &tokens[1]).await;
}

#[tokio::test]
async fn revoking_all_sessions_ends_every_session_of_the_key_and_none_of_another_key() {
    let sessions = ["default", "worker-1", "worker-2"];
    let (t, key, tokens) = sessions_of_a_key(&sessions).await;
    let other_key = t.create_key("read").await;
    let other = t.token(&other_key, "default").await;

    let r = t
        .revoke(json!({"api_key": key, "all_sessions": true}))
        .await;
    assert_done(&r, sessions.len() as u64);
    for token in &tokens {
        assert_revoked(&t, token).await;
    }
    assert_active(&t, &other).await;

    let fresh = t.token(&key, "default").await;
    assert!(!tokens.contains(&fresh));
    assert_active(&t, &fresh).await;
}

#[tokio::test]
async fn revoking_the_api_key_ends_its_tokens_and_logins_and_repeating_it_is_harmless() {
    let (t, key, tokens) = sessions_of_a_key(&["default", "worker-1"]).await;
    let other_key = t.create_key("read").await;
    let other = t.token(&other_key, "default").await;
    let body = json!({"api_key": key, "revoke_api_key": true});

    let r = t.revoke(body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"revoked": true, "sessions_revoked": 2, "api_key_revoked": true})
    );
    for token in &tokens {
        assert_revoked(&t, token).await;
    }
    let login = t.login(json!({"api_key": key})).await;
    assert_error(&login, 401, "invalid_client");
    assert_active(&t, &other).await;

    let again = t.revoke(body).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["api_key_revoked"], true);
    assert_eq!(again.body["sessions_revoked"], 0);
}

#[tokio::test]
async fn a_wrong_api_key_is_401_invalid_client_and_revokes_nothing() {
    let (t, key, tokens) = sessions_of_a_key(&["default"]).await;
    let id = KeyId::parse(key_id(&key)).unwrap();
    let wrong = ApiKey::regenerate(&id).unwrap().expose();
    let wrong = wrong.expose_secret();

    for body in [
        json!({"api_key": wrong}),
        json!({"api_key": wrong, "session_id": "default"}),
        json!({"api_key": wrong, "all_sessions": true}),
        json!({"api_key": wrong, "revoke_api_key": true}),
        json!({"api_key": "bauth_garbage", "all_sessions": true}),
    ] {
        assert_error(&t.revoke(body).await, 401, "invalid_client");
    }
    assert_active(&t, &tokens[0]).await;
    assert_eq!(t.token(&key, "default").await, tokens[0]);
}

#[tokio::test]
async fn conflicting_fields_are_400_invalid_request_and_revoke_nothing() {
    let (t, key, tokens) = sessions_of_a_key(&["default"]).await;
    let token = &tokens[0];
    for body in [
        json!({"token": token, "api_key": key}),
        json!({"api_key": key, "all_sessions": true, "session_id": "default"}),
        json!({"api_key": key, "all_sessions": true, "revoke_api_key": true}),
        json!({"api_key": key, "revoke_api_key": true, "session_id": "default"}),
        json!({"token": token, "revoke_api_key": true}),
        json!({"token": token, "all_sessions": true}),
        json!({"token": token, "session_id": "default"}),
    ] {
        let r = t.revoke(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert_error(&r, 400, "invalid_request");
    }

    let bearer = format!("Bearer {token}");
    for body in [json!({"api_key": key}), json!({"token": token})] {
        let r = t
            .request(
                Method::POST,
                "/auth/revoke",
                &[
                    ("authorization", &bearer),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            )
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    assert_active(&t, token).await;
}

#[tokio::test]
async fn a_revoke_that_names_nothing_is_400_invalid_request() {
    let (t, _, tokens) = sessions_of_a_key(&["default"]).await;
    let empty = t.request(Method::POST, "/auth/revoke", &[], "").await;
    assert_error(&empty, 400, "invalid_request");
    for body in [json!({}), json!({"session_id": "default"})] {
        assert_error(&t.revoke(body).await, 400, "invalid_request");
    }
    assert_active(&t, &tokens[0]).await;
}

#[tokio::test]
async fn a_form_encoded_revoke_of_all_sessions_works() {
    let (t, key, tokens) = sessions_of_a_key(&["default", "worker-1"]).await;
    let r = t
        .request(
            Method::POST,
            "/auth/revoke",
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("api_key={key}&all_sessions=true"),
        )
        .await;
    assert_done(&r, 2);
    for token in &tokens {
        assert_revoked(&t, token).await;
    }
}

#[tokio::test]
async fn a_key_revoking_itself_leaves_an_audit_event_naming_it_and_the_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let id = KeyId::parse(key_id(&key)).unwrap();
    let r = t
        .revoke(json!({"api_key": key, "revoke_api_key": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let again = t
        .revoke(json!({"api_key": key, "revoke_api_key": true}))
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let events = t.store().key_events(&id, None, 10).await.unwrap();
    let actions: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::to_value(e.action)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        ["key.revoked", "key.created"],
        "a repeat records nothing"
    );
    let revoked = &events[0];
    assert_eq!(
        serde_json::to_value(&revoked.actor).unwrap(),
        json!({"kind": "key", "id": id.as_str(), "owner": null})
    );
    assert!(revoked.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        revoked.changes["status"],
        json!({"old": "active", "new": "revoked"})
    );
}
