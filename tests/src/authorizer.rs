//! Driving the API Gateway Lambda authorizer in-process with the event
//! fixtures of `events/authorizer/`, for the tests of either layer.

use std::path::Path;

use auth_shared::authorizer::{Authorizer, AuthorizerConfig, AuthorizerError, RouteScopes};
use serde_json::{Value, json};

use crate::TestApp;

/// The route map the tests protect: literal, parameterised and public routes.
pub const ROUTES: &str = "GET /v1/whoami=read;\
                      POST /v1/documents=write documents:write;\
                      GET /v1/documents/{id}=read documents:read;\
                      GET /v1/documents/{id}/versions=read documents:read;\
                      GET /v1/public=";

/// The fixture prefixes of the three shapes answered with an IAM policy.
pub const POLICY_SHAPES: [&str; 3] = ["http-api-v1", "rest-token", "rest-request"];

/// The stage ARN prefix of the fixtures.
pub const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/";

/// An event fixture with `token` in place of the placeholder.
pub fn fixture(name: &str, token: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/authorizer")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text.replace("__TOKEN__", token)).unwrap()
}

/// `event` through an authorizer on `t` with [`ROUTES`], as its JSON answer.
pub async fn authorize(t: &TestApp, event: Value) -> Result<Value, AuthorizerError> {
    authorize_on(t, ROUTES, event).await
}

/// `event` through an authorizer on `t` with `routes`, as its JSON answer.
pub async fn authorize_on(
    t: &TestApp,
    routes: &str,
    event: Value,
) -> Result<Value, AuthorizerError> {
    run(
        Authorizer::new(t.app.clone(), RouteScopes::parse(routes).unwrap()),
        event,
    )
    .await
}

/// Through an authorizer whose IAM policies API Gateway caches (stage policies).
pub async fn authorize_cached(
    t: &TestApp,
    routes: &str,
    event: Value,
) -> Result<Value, AuthorizerError> {
    let config = AuthorizerConfig::new(RouteScopes::parse(routes).unwrap(), 300).unwrap();
    run(Authorizer::with_config(t.app.clone(), config), event).await
}

async fn run(authorizer: Authorizer, event: Value) -> Result<Value, AuthorizerError> {
    authorizer
        .handle(event, "test-request")
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

/// The effect of a request policy, which must name the event's methodArn
/// and nothing else.
pub fn effect_on_own_arn(response: &Value, event: &Value) -> String {
    let statements = response["policyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{response}");
    let statement = &statements[0];
    assert_eq!(statement["Action"], "execute-api:Invoke");
    assert_eq!(
        statement["Resource"],
        json!([event["methodArn"]]),
        "{response}"
    );
    statement["Effect"].as_str().unwrap().to_owned()
}

/// A key with `scopes`, its id and a token for its default session.
pub async fn token_with(t: &TestApp, scopes: &str) -> (String, String) {
    let key = t.create_key(scopes).await;
    let id = key["bauth_".len().."bauth_".len() + 16].to_owned();
    (id, t.token(&key, "default").await)
}
