//! Verify against session items in DynamoDB: an item left past its time
//! (moto, like DynamoDB before its TTL sweep, keeps it) and items written by
//! hand with the key stolen from Secrets Manager.

use auth_shared::domain::token::TokenError;
use auth_tests::aws::AwsTestApp;
use auth_tests::expect::{StolenKey, assert_invalid_token, key_id};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

/// Reads the AWSCURRENT signing key of `t`'s secret from moto.
async fn stolen_key(t: &AwsTestApp) -> StolenKey {
    let out = aws_sdk_secretsmanager::Client::new(&t.sdk)
        .get_secret_value()
        .secret_id(&t.secret_arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let value: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    StolenKey {
        kid: out.version_id().unwrap().to_owned(),
        secret: value["key"].as_str().unwrap().to_owned(),
    }
}

/// A service, an API key with `read write` and a token login issued for it.
async fn issued() -> (AwsTestApp, String, String) {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read write").await;
    let token = t.token(&key, "default").await;
    (t, key, token)
}

async fn session_item_exists(t: &AwsTestApp, key: &str, session: &str) -> bool {
    t.dynamodb()
        .get_item()
        .table_name(&t.table)
        .key(
            "pk",
            AttributeValue::S(format!("SESSION#{}#{session}", key_id(key))),
        )
        .key("sk", AttributeValue::S("SESSION".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

#[tokio::test]
async fn a_token_past_its_expiry_and_leeway_is_refused_though_its_session_item_remains() {
    let (t, key, token) = issued().await;
    t.clock.advance(7200 + 29);
    assert_eq!(
        t.verify(&token, None).await.status,
        200,
        "within the leeway"
    );
    t.clock.advance(1);
    assert!(
        session_item_exists(&t, &key, "default").await,
        "moto never deletes by TTL"
    );
    assert_invalid_token(&t.verify(&token, None).await, TokenError::Expired);
}

/// Writes a session item as login would, for a token with `claims`.
async fn put_session_item(t: &AwsTestApp, claims: &Value, kid: &str) {
    let s = |name: &str| AttributeValue::S(claims[name].as_str().unwrap().to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let exp = claims["exp"].as_u64().unwrap();
    t.dynamodb()
        .put_item()
        .table_name(&t.table)
        .item(
            "pk",
            AttributeValue::S(format!(
                "SESSION#{}#{}",
                claims["sub"].as_str().unwrap(),
                claims["sid"].as_str().unwrap()
            )),
        )
        .item("sk", AttributeValue::S("SESSION".into()))
        .item("sessions_pk", s("sub"))
        .item("sessions_sk", s("sid"))
        .item("jti", s("jti"))
        .item("iat", n(claims["iat"].as_u64().unwrap()))
        .item("exp", n(exp))
        .item("kid", AttributeValue::S(kid.to_owned()))
        .item("scope", s("scope"))
        .item("iss", s("iss"))
        .item("ttl", n(exp + 30))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hand_written_session_item_whose_time_has_passed_counts_as_absent() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let stolen = stolen_key(&t).await;
    let now = t.clock.seconds();
    let claims = |sid: &str, exp: u64| {
        json!({
            "iss": auth_tests::ISSUER, "sub": key_id(&key), "sid": sid,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "iat": exp - 7200, "exp": exp, "scope": "read",
        })
    };

    // Control: a live item written the same way is honoured.
    let live = claims("by-hand-live", now + 3600);
    put_session_item(&t, &live, &stolen.kid).await;
    let r = t.verify(&stolen.forge(&stolen.header(), &live), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let past = claims("by-hand-past", now - 3600);
    put_session_item(&t, &past, &stolen.kid).await;
    let matching = stolen.forge(&stolen.header(), &past);
    assert_invalid_token(&t.verify(&matching, None).await, TokenError::Expired);

    // The same jti with a later exp is not the token the item holds.
    let mut stretched = past.clone();
    stretched["exp"] = json!(now + 3600);
    let stretched = stolen.forge(&stolen.header(), &stretched);
    assert_invalid_token(&t.verify(&stretched, None).await, TokenError::Revoked);
}
