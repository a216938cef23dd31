//! `GET|POST /auth/verify`: what a valid token shows, and every way a token
//! is refused, including tokens forged with the real signing key.
//!
//! The forged tokens start from the claims of a token login really issued and
//! change one thing, and a control test shows that the unchanged claims,
//! re-signed by the forger, do verify: so each 401 below is about the one
//! thing changed, which `error_description` confirms.

use auth_shared::domain::api_key::{KeyId, KeyStatus};
use auth_shared::domain::token::{MAX_TOKEN_BYTES, TokenError};
use auth_tests::{TestApp, TestResponse};
use jsonwebtoken::Algorithm;
use lambda_http::http::Method;
use serde_json::{Value, json};

pub(crate) use auth_tests::expect::{
    StolenKey, assert_invalid_token, b64, claims_of, key_id, key_secret,
};

/// The signing key of `t`, as someone who read it out of the key store holds it.
pub(crate) async fn stolen_key(t: &TestApp) -> StolenKey {
    t.signing_key.clone()
}

/// A service, an API key with `read write` and a token login issued for it.
async fn issued() -> (TestApp, String, String) {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let token = t.token(&key, "default").await;
    (t, key, token)
}

async fn post_verify(t: &TestApp, headers: &[(&str, &str)], body: &Value) -> TestResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    t.request(Method::POST, "/auth/verify", &all, &body.to_string())
        .await
}

#[tokio::test]
async fn a_valid_token_shows_its_claims_and_time_left() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let issued_at = t.clock.seconds();
    let token = t.token(&key, "worker-1").await;
    t.clock.advance(100);

    let r = t.verify(&token, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["sub"], key_id(&key));
    assert_eq!(r.body["session_id"], "worker-1");
    assert_eq!(r.body["scope"], "read write");
    assert_eq!(r.body["jti"], claims_of(&token)["jti"]);
    assert!(r.body["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(r.body["iat"], issued_at);
    assert_eq!(r.body["exp"], issued_at + 7200);
    assert_eq!(r.body["expires_in"], 7100);
}

#[tokio::test]
async fn a_token_verifies_by_get_with_a_bearer_header_and_a_query_scope() {
    let (t, _, token) = issued().await;
    let r = t.verify(&token, Some("read")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
    let r = t.verify(&token, Some("read write")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_token_verifies_by_post_with_the_token_and_scope_in_the_body() {
    let (t, key, token) = issued().await;
    let r = post_verify(&t, &[], &json!({"token": token, "scope": "write"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["sub"], key_id(&key));
}

#[tokio::test]
async fn a_token_verifies_by_post_with_a_bearer_header_and_a_body_scope() {
    let (t, _, token) = issued().await;
    let auth = format!("Bearer {token}");
    let r = post_verify(&t, &[("authorization", &auth)], &json!({"scope": "read"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
}

#[tokio::test]
async fn every_required_scope_must_be_held_or_it_is_403_insufficient_scope() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let token = t
        .login(json!({"api_key": key, "scope": "read"}))
        .await
        .token();
    assert_eq!(t.verify(&token, Some("read")).await.status, 200);

    for (required, uri) in [
        ("read write", "/auth/verify?scope=read%20write"),
        ("write", "/auth/verify?scope=write"),
    ] {
        let auth = format!("Bearer {token}");
        let r = t
            .request(Method::GET, uri, &[("authorization", &auth)], "")
            .await;
        assert_eq!(r.status, 403, "{required}: {:?}", r.body);
        assert_eq!(r.error(), "insufficient_scope");
        assert_ne!(r.body["active"], true);
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("scope=\"{required}\"")),
            "{challenge}"
        );
    }
    let r = post_verify(&t, &[], &json!({"token": token, "scope": "write"})).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
}

#[tokio::test]
async fn an_invalid_token_is_401_with_active_false_and_a_bearer_challenge() {
    let t = TestApp::spawn().await;
    let r = t.verify("not-a-jwt", None).await;
    assert_invalid_token(&r, TokenError::Malformed);
}

#[tokio::test]
async fn a_token_forged_with_the_real_key_and_the_issued_claims_verifies() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let forged = stolen.forge(&stolen.header(), &claims_of(&token));
    let r = t.verify(&forged, None).await;
    assert_eq!(
        r.status, 200,
        "the forging helper must be right: {:?}",
        r.body
    );
}

/// Signs the issued claims with one change and checks verify refuses them for `reason`.
async fn assert_forged_claims_refused(change: impl Fn(&mut Value, u64), reason: TokenError) {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let mut claims = claims_of(&token);
    change(&mut claims, t.clock.seconds());
    let forged = stolen.forge(&stolen.header(), &claims);
    assert_invalid_token(&t.verify(&forged, None).await, reason);
}

#[tokio::test]
async fn a_forged_token_that_has_expired_is_refused() {
    assert_forged_claims_refused(|c, now| c["exp"] = json!(now - 31), TokenError::Expired).await;
}

#[tokio::test]
async fn a_forged_token_not_valid_before_a_future_time_is_refused() {
    assert_forged_claims_refused(
        |c, now| c["nbf"] = json!(now + 3600),
        TokenError::NotYetValid,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_issued_in_the_future_is_refused() {
    assert_forged_claims_refused(
        |c, now| c["iat"] = json!(now + 3600),
        TokenError::IssuedInFuture,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_whose_exp_is_a_string_is_refused() {
    assert_forged_claims_refused(
        |c, _| c["exp"] = json!(c["exp"].to_string()),
        TokenError::Claims,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_without_exp_is_refused() {
    assert_forged_claims_refused(
        |c, _| {
            c.as_object_mut().unwrap().remove("exp");
        },
        TokenError::Claims,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_from_another_issuer_is_refused() {
    assert_forged_claims_refused(
        |c, _| c["iss"] = json!("https://evil.test"),
        TokenError::Issuer,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_with_a_jti_never_issued_is_refused() {
    assert_forged_claims_refused(
        |c, _| c["jti"] = json!(uuid::Uuid::new_v4().simple().to_string()),
        TokenError::Revoked,
    )
    .await;
}

#[tokio::test]
async fn a_forged_token_for_a_session_never_issued_is_refused() {
    assert_forged_claims_refused(|c, _| c["sid"] = json!("never-issued"), TokenError::Revoked)
        .await;
}

#[tokio::test]
async fn a_forged_token_naming_an_unknown_kid_is_refused() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let mut header = stolen.header();
    header["kid"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = stolen.forge(&header, &claims_of(&token));
    assert_invalid_token(&t.verify(&forged, None).await, TokenError::UnknownKey);
}

#[tokio::test]
async fn a_forged_token_with_a_path_like_kid_is_refused() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    for kid in ["../../x", "/etc/passwd", "https://evil.test/key"] {
        let mut header = stolen.header();
        header["kid"] = json!(kid);
        let forged = stolen.forge(&header, &claims_of(&token));
        assert_invalid_token(&t.verify(&forged, None).await, TokenError::UnknownKey);
    }
}

#[tokio::test]
async fn a_token_signed_hs512_with_the_real_key_is_refused() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let mut header = stolen.header();
    header["alg"] = json!("HS512");
    let forged = stolen.forge_with(Algorithm::HS512, &header, &claims_of(&token));
    assert_invalid_token(&t.verify(&forged, None).await, TokenError::Algorithm);
}

#[tokio::test]
async fn a_token_with_alg_none_is_refused_signed_or_not() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let mut header = stolen.header();
    header["alg"] = json!("none");
    let claims = claims_of(&token);
    let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
    assert_invalid_token(&t.verify(&unsigned, None).await, TokenError::Malformed);
    let signed = stolen.forge(&header, &claims);
    assert_invalid_token(&t.verify(&signed, None).await, TokenError::Algorithm);
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let (t, _, token) = issued().await;
    let mut claims = claims_of(&token);
    claims["scope"] = json!("admin read write");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_invalid_token(&t.verify(&tampered, None).await, TokenError::Signature);
}

#[tokio::test]
async fn a_token_with_the_header_of_another_token_is_refused() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    // Another valid token for the same claims, whose header differs in bytes.
    let other = stolen.forge(
        &json!({"alg": "HS256", "kid": stolen.kid}),
        &claims_of(&token),
    );
    assert_eq!(t.verify(&other, None).await.status, 200);
    let (other_header, _) = other.split_once('.').unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    assert_ne!(other_header, header);
    let swapped = format!("{other_header}.{rest}");
    assert_invalid_token(&t.verify(&swapped, None).await, TokenError::Signature);
}

#[tokio::test]
async fn an_oversized_token_is_refused_even_when_properly_signed() {
    let (t, _, token) = issued().await;
    let stolen = stolen_key(&t).await;
    let mut claims = claims_of(&token);
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let big = stolen.forge(&stolen.header(), &claims);
    assert!(big.len() > MAX_TOKEN_BYTES);
    // Through the body: a header this long is legal, but the body is the likelier path.
    let r = post_verify(&t, &[], &json!({"token": big})).await;
    assert_invalid_token(&r, TokenError::TooLarge);
    assert_invalid_token(&t.verify(&big, None).await, TokenError::TooLarge);
}

#[tokio::test]
async fn a_token_of_a_key_revoked_through_the_api_is_refused() {
    let (t, key, token) = issued().await;
    let r = t
        .revoke(json!({"api_key": key, "revoke_api_key": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_invalid_token(&t.verify(&token, None).await, TokenError::Revoked);
}

#[tokio::test]
async fn a_token_is_refused_once_its_key_is_marked_revoked_even_if_its_session_remains() {
    let (t, key, token) = issued().await;
    let id = KeyId::parse(key_id(&key)).unwrap();
    let mut record = t.store().key(&id).await.unwrap().unwrap();
    record.status = KeyStatus::Revoked;
    assert!(
        t.store()
            .save_key(&record, &auth_tests::event(&record))
            .await
            .unwrap()
    );
    assert_eq!(t.store().list_sessions(&id).await.unwrap().len(), 1);
    assert_invalid_token(&t.verify(&token, None).await, TokenError::Revoked);
}

#[tokio::test]
async fn a_token_is_refused_once_its_key_has_expired() {
    let t = TestApp::spawn().await;
    let key = t
        .create_key_expiring("read", Some(t.clock.seconds() + 600))
        .await;
    let token = t.token(&key, "default").await;
    assert_eq!(t.verify(&token, None).await.status, 200);
    t.clock.advance(600);
    assert_invalid_token(&t.verify(&token, None).await, TokenError::Revoked);
}

#[tokio::test]
async fn a_token_in_both_the_bearer_header_and_the_body_is_400_invalid_request() {
    let (t, _, token) = issued().await;
    let auth = format!("Bearer {token}");
    let r = post_verify(&t, &[("authorization", &auth)], &json!({"token": token})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.error(), "invalid_request");
    assert_ne!(r.body["active"], true);
}

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let t = TestApp::spawn().await;
    let r = t.request(Method::GET, "/auth/verify", &[], "").await;
    assert_invalid_token(&r, TokenError::Missing);
    let r = post_verify(&t, &[], &json!({"scope": "read"})).await;
    assert_invalid_token(&r, TokenError::Missing);
}
