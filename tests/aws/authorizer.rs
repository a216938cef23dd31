//! The authorizer on DynamoDB: an unreachable table never allows, and each
//! call costs one read.

use std::sync::Arc;

use auth_shared::authorizer::AuthorizerError;
use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_tests::authorizer::{POLICY_SHAPES, authorize, effect_on_own_arn, fixture, token_with};
use auth_tests::aws::{AwsTestApp, dead_endpoint};
use serde_json::json;

#[tokio::test]
async fn an_unreachable_table_never_allows_and_rest_fails_with_a_500_not_a_policy() {
    let mut t = AwsTestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        &t.table,
    ));

    let r = authorize(&t, fixture("http-api-valid.json", &token))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"isAuthorized": false}),
        "HTTP API: fail closed, the client sees 403"
    );
    let event = fixture("http-api-v1-valid.json", &token);
    let r = authorize(&t, event.clone()).await.unwrap();
    assert_eq!(
        effect_on_own_arn(&r, &event),
        "Deny",
        "payload 1.0: a Deny, 403"
    );

    for name in ["rest-token-valid.json", "rest-request-valid.json"] {
        let r = authorize(&t, fixture(name, &token)).await;
        assert_eq!(r, Err(AuthorizerError::Unavailable), "{name}");
    }
    assert_ne!(
        AuthorizerError::Unavailable.to_string(),
        "Unauthorized",
        "any other message is a 500, and no policy at all"
    );
}

#[tokio::test]
async fn each_authorizer_call_costs_one_dynamodb_read_and_a_rejected_one_none() {
    let t = AwsTestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let mut cases = vec![
        ("http-api-valid.json".to_owned(), token.as_str(), 1),
        ("http-api-missing-scope.json".to_owned(), token.as_str(), 1),
        ("http-api-no-header.json".to_owned(), "", 0),
        ("http-api-unlisted-route.json".to_owned(), token.as_str(), 0),
    ];
    for shape in POLICY_SHAPES {
        cases.push((format!("{shape}-valid.json"), token.as_str(), 1));
        cases.push((format!("{shape}-missing-scope.json"), token.as_str(), 1));
        cases.push((format!("{shape}-no-header.json"), "", 0));
        cases.push((format!("{shape}-valid.json"), "not.a.token", 0));
    }
    for (name, token, dynamodb) in cases {
        let before = t.calls.count();
        let answered = authorize(&t, fixture(&name, token)).await;
        let after = t.calls.count();
        assert_ne!(answered, Err(AuthorizerError::Internal), "{name}");
        assert_eq!(
            (
                after.dynamodb - before.dynamodb,
                after.secrets_manager - before.secrets_manager
            ),
            (dynamodb, 0),
            "{name}"
        );
    }
}
