//! The API Gateway Lambda authorizer, in-process, fed the event fixtures of
//! `events/authorizer/` with a real token from this test's service in place
//! of `__TOKEN__`. HTTP API answers `isAuthorized`; REST TOKEN answers an IAM
//! policy that must be right for every route, since API Gateway caches it by
//! token alone.

use std::path::Path;
use std::sync::Arc;

use auth_shared::authorizer::{Authorizer, AuthorizerError, RouteScopes};
use auth_shared::store::dynamodb::DynamoDbStore;
use auth_tests::{CapturedLogs, TestApp, dead_endpoint};
use serde_json::{Value, json};

const ROUTES: &str = "GET /v1/whoami=read;\
                      POST /v1/documents=write documents:write;\
                      GET /v1/documents/{id}=read documents:read;\
                      GET /v1/public=";

const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/";

/// An event fixture with `token` in place of the placeholder.
fn fixture(name: &str, token: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/authorizer")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text.replace("__TOKEN__", token)).unwrap()
}

async fn authorize(t: &TestApp, event: Value) -> Result<Value, AuthorizerError> {
    authorize_on(t, ROUTES, event).await
}

async fn authorize_on(t: &TestApp, routes: &str, event: Value) -> Result<Value, AuthorizerError> {
    Authorizer::new(t.app.clone(), RouteScopes::parse(routes).unwrap())
        .handle(event, "test-request")
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

/// A key with `scopes`, its id and a token for its default session.
async fn token_with(t: &TestApp, scopes: &str) -> (String, String) {
    let key = t.create_key(scopes).await;
    let id = key["bauth_".len().."bauth_".len() + 16].to_owned();
    (id, t.token(&key, "default").await)
}

/// IAM's resource wildcards: `*` any run of characters, `?` any one.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    let (p, a) = (pattern.as_bytes(), arn.as_bytes());
    let (mut pi, mut ai, mut star, mut mark) = (0, 0, None, 0);
    while ai < a.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == a[ai]) {
            pi += 1;
            ai += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ai;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ai = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// What API Gateway decides for a call to `route` under `policy`: an explicit
/// Deny wins, otherwise it needs an Allow.
fn policy_allows(policy: &Value, route: &str) -> bool {
    let (method, path) = route.split_once(' ').unwrap();
    let arn = format!("{STAGE}{method}{path}");
    let statements = policy["policyDocument"]["Statement"].as_array().unwrap();
    let matching = |effect: &str| {
        statements.iter().any(|s| {
            assert_eq!(s["Action"], "execute-api:Invoke");
            s["Effect"] == effect
                && s["Resource"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| arn_matches(r.as_str().unwrap(), &arn))
        })
    };
    !matching("Deny") && matching("Allow")
}

#[tokio::test]
async fn an_http_api_call_with_a_valid_token_is_authorized_with_its_context() {
    let t = TestApp::spawn().await;
    let (id, token) = token_with(&t, "read write").await;
    let r = authorize(&t, fixture("http-api-valid.json", &token))
        .await
        .unwrap();
    assert_eq!(r["isAuthorized"], true, "{r}");
    let context = &r["context"];
    assert_eq!(context["sub"], id.as_str());
    assert_eq!(context["session_id"], "default");
    assert_eq!(context["scope"], "read write");
    assert!(!context["jti"].as_str().unwrap().is_empty());
    assert_eq!(
        context.as_object().unwrap().len(),
        4,
        "ids and scope only: {context}"
    );
}

#[tokio::test]
async fn an_http_api_call_with_an_expired_token_is_not_authorized() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    t.clock
        .advance(t.app.policy.ttl_seconds + t.app.policy.leeway_seconds + 1);
    let r = authorize(&t, fixture("http-api-expired.json", &token))
        .await
        .unwrap();
    assert_eq!(r, json!({"isAuthorized": false}));
}

#[tokio::test]
async fn an_http_api_call_with_a_revoked_token_is_not_authorized() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    assert_eq!(
        authorize(&t, fixture("http-api-revoked.json", &token))
            .await
            .unwrap()["isAuthorized"],
        true,
        "valid before the revoke"
    );
    assert_eq!(t.revoke_bearer(&token).await.status, 200);
    let r = authorize(&t, fixture("http-api-revoked.json", &token))
        .await
        .unwrap();
    assert_eq!(r, json!({"isAuthorized": false}));
}

#[tokio::test]
async fn an_http_api_call_without_the_routes_scopes_is_not_authorized() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read write").await;
    let r = authorize(&t, fixture("http-api-missing-scope.json", &token))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"isAuthorized": false}),
        "POST /v1/documents needs documents:write too"
    );
    let (_, full) = token_with(&t, "write documents:write").await;
    let r = authorize(&t, fixture("http-api-missing-scope.json", &full))
        .await
        .unwrap();
    assert_eq!(r["isAuthorized"], true, "{r}");
}

#[tokio::test]
async fn an_http_api_call_without_an_authorization_header_is_not_authorized() {
    let t = TestApp::spawn().await;
    let r = authorize(&t, fixture("http-api-no-header.json", ""))
        .await
        .unwrap();
    assert_eq!(r, json!({"isAuthorized": false}));
}

#[tokio::test]
async fn an_http_api_route_that_is_not_configured_is_denied_to_every_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read write documents:read documents:write").await;
    let r = authorize(&t, fixture("http-api-unlisted-route.json", &token))
        .await
        .unwrap();
    assert_eq!(r, json!({"isAuthorized": false}));
}

#[tokio::test]
async fn an_http_api_route_listed_without_scopes_admits_any_valid_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "write").await;
    let mut event = fixture("http-api-valid.json", &token);
    event["routeKey"] = json!("GET /v1/public");
    let r = authorize(&t, event).await.unwrap();
    assert_eq!(r["isAuthorized"], true, "{r}");
    let mut event = fixture("http-api-valid.json", "not-a-token");
    event["routeKey"] = json!("GET /v1/public");
    let r = authorize(&t, event).await.unwrap();
    assert_eq!(r, json!({"isAuthorized": false}), "but a valid one");
}

#[tokio::test]
async fn a_rest_policy_allows_exactly_the_routes_the_tokens_scopes_permit() {
    let t = TestApp::spawn().await;
    let (id, token) = token_with(&t, "read").await;
    let r = authorize(&t, fixture("rest-token-valid.json", &token))
        .await
        .unwrap();
    assert_eq!(r["principalId"], id.as_str());
    assert_eq!(r["policyDocument"]["Version"], "2012-10-17");
    assert!(policy_allows(&r, "GET /v1/whoami"), "{r}");
    assert!(policy_allows(&r, "GET /v1/public"), "{r}");
    assert!(!policy_allows(&r, "POST /v1/documents"), "{r}");
    assert!(!policy_allows(&r, "GET /v1/documents/42"), "{r}");
    assert!(!policy_allows(&r, "DELETE /v1/whoami"), "{r}");
    assert!(!policy_allows(&r, "GET /v1/unlisted"), "{r}");
    let context = &r["context"];
    assert_eq!(context["sub"], id.as_str());
    assert_eq!(context["session_id"], "default");
    assert_eq!(context["scope"], "read");
    assert!(!context["jti"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn a_rest_policy_is_the_same_whichever_route_the_call_was_for() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let for_whoami = authorize(&t, fixture("rest-token-valid.json", &token))
        .await
        .unwrap();
    let for_documents = authorize(&t, fixture("rest-token-missing-scope.json", &token))
        .await
        .unwrap();
    assert_eq!(
        for_whoami, for_documents,
        "API Gateway caches the policy by token and reuses it for every route"
    );
    assert!(
        !policy_allows(&for_documents, "POST /v1/documents"),
        "{for_documents}"
    );
    assert!(
        policy_allows(&for_documents, "GET /v1/whoami"),
        "{for_documents}"
    );
}

#[tokio::test]
async fn a_rest_policy_turns_path_parameters_into_wildcards() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read documents:read").await;
    let r = authorize(&t, fixture("rest-token-valid.json", &token))
        .await
        .unwrap();
    assert!(policy_allows(&r, "GET /v1/documents/42"), "{r}");
    assert!(
        !policy_allows(&r, "GET /v1/documents/42/secret"),
        "IAM's * crosses '/', so the policy denies below the parameter: {r}"
    );
    assert!(!policy_allows(&r, "DELETE /v1/documents/42"), "{r}");
    assert!(!policy_allows(&r, "POST /v1/documents"), "{r}");
}

#[tokio::test]
async fn a_rest_token_that_may_call_no_route_gets_an_explicit_deny_of_the_stage() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "write").await;
    let routes = "GET /v1/whoami=read;POST /v1/documents=write documents:write";
    let r = authorize_on(&t, routes, fixture("rest-token-missing-scope.json", &token))
        .await
        .unwrap();
    assert_eq!(
        r["policyDocument"]["Statement"],
        json!([{
            "Action": "execute-api:Invoke",
            "Effect": "Deny",
            "Resource": [format!("{STAGE}*/*")],
        }])
    );
    assert!(!policy_allows(&r, "POST /v1/documents"));
    assert!(!policy_allows(&r, "GET /v1/whoami"));
}

#[tokio::test]
async fn a_rest_call_with_an_expired_token_is_unauthorized() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    t.clock
        .advance(t.app.policy.ttl_seconds + t.app.policy.leeway_seconds + 1);
    let r = authorize(&t, fixture("rest-token-expired.json", &token)).await;
    assert_eq!(r, Err(AuthorizerError::Unauthorized));
    assert_eq!(AuthorizerError::Unauthorized.to_string(), "Unauthorized");
}

#[tokio::test]
async fn a_rest_call_with_a_token_inside_the_leeway_is_still_allowed() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    t.clock
        .advance(t.app.policy.ttl_seconds + t.app.policy.leeway_seconds - 1);
    let r = authorize(&t, fixture("rest-token-expired.json", &token))
        .await
        .unwrap();
    assert!(policy_allows(&r, "GET /v1/whoami"), "{r}");
}

#[tokio::test]
async fn a_rest_call_with_a_revoked_token_is_unauthorized() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    assert_eq!(t.revoke_bearer(&token).await.status, 200);
    let r = authorize(&t, fixture("rest-token-revoked.json", &token)).await;
    assert_eq!(r, Err(AuthorizerError::Unauthorized));
}

#[tokio::test]
async fn a_rest_call_without_a_token_is_unauthorized() {
    let t = TestApp::spawn().await;
    let r = authorize(&t, fixture("rest-token-no-header.json", "")).await;
    assert_eq!(r, Err(AuthorizerError::Unauthorized));
    let (_, token) = token_with(&t, "read").await;
    let mut event = fixture("rest-token-valid.json", &token);
    event["authorizationToken"] = json!(format!("Basic {token}"));
    let r = authorize(&t, event).await;
    assert_eq!(
        r,
        Err(AuthorizerError::Unauthorized),
        "only the Bearer scheme"
    );
}

#[tokio::test]
async fn an_unreachable_table_never_allows_and_rest_fails_with_a_500_not_a_policy() {
    let mut t = TestApp::spawn().await;
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

    let r = authorize(&t, fixture("rest-token-valid.json", &token)).await;
    assert_eq!(r, Err(AuthorizerError::Unavailable));
    assert_ne!(
        AuthorizerError::Unavailable.to_string(),
        "Unauthorized",
        "any other message is a 500, and no policy at all"
    );
}

#[tokio::test]
async fn an_event_of_neither_shape_is_an_error_not_a_decision() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let rest_request = json!({
        "type": "REQUEST",
        "methodArn": format!("{STAGE}GET/v1/whoami"),
        "headers": {"Authorization": format!("Bearer {token}")},
    });
    assert_eq!(
        authorize(&t, rest_request).await,
        Err(AuthorizerError::Internal)
    );
    let mut payload_1 = fixture("http-api-valid.json", &token);
    payload_1["version"] = json!("1.0");
    assert_eq!(
        authorize(&t, payload_1).await,
        Err(AuthorizerError::Internal)
    );
    let mut bad_arn = fixture("rest-token-valid.json", &token);
    bad_arn["methodArn"] = json!("arn:aws:execute-api:us-east-1:1:*/prod/GET/v1/whoami");
    assert_eq!(authorize(&t, bad_arn).await, Err(AuthorizerError::Internal));
}

#[tokio::test]
async fn each_authorizer_call_costs_one_dynamodb_read_and_a_rejected_one_none() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let cases = [
        ("http-api-valid.json", token.as_str(), 1),
        ("http-api-missing-scope.json", token.as_str(), 1),
        ("rest-token-valid.json", token.as_str(), 1),
        ("rest-token-missing-scope.json", token.as_str(), 1),
        ("http-api-no-header.json", "", 0),
        ("rest-token-no-header.json", "", 0),
        ("http-api-unlisted-route.json", token.as_str(), 0),
        ("rest-token-valid.json", "not.a.token", 0),
    ];
    for (name, token, dynamodb) in cases {
        let before = t.app.calls.count();
        let _ = authorize(&t, fixture(name, token)).await;
        let after = t.app.calls.count();
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

#[tokio::test]
async fn each_call_writes_one_log_line_with_ids_and_never_the_token() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    tracing::callsite::rebuild_interest_cache();
    let t = TestApp::spawn().await;
    let (id, token) = token_with(&t, "read").await;
    authorize(&t, fixture("http-api-valid.json", &token))
        .await
        .unwrap();
    authorize(&t, fixture("http-api-missing-scope.json", &token))
        .await
        .unwrap();
    authorize(&t, fixture("rest-token-valid.json", &token))
        .await
        .unwrap();
    authorize(&t, fixture("rest-token-no-header.json", ""))
        .await
        .unwrap_err();

    let text = logs.text();
    assert!(!text.contains(&token), "a token reached the log: {text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["function"] == "authorizer")
        .collect();
    let summary: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap(),
                l["route"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("http_api", "GET /v1/whoami", "allow"),
            ("http_api", "POST /v1/documents", "deny"),
            ("rest_token", "GET /v1/whoami", "allow"),
            ("rest_token", "GET /v1/whoami", "unauthorized"),
        ]
    );
    for line in &lines[..3] {
        assert_eq!(line["key_id"], id.as_str(), "{line}");
        assert_eq!(line["session_id"], "default", "{line}");
        assert!(line["latency_ms"].as_f64().is_some(), "{line}");
        assert_eq!(line["request_id"], "test-request", "{line}");
    }
    assert_eq!(lines[1]["error"], "insufficient_scope");
    assert_eq!(lines[2]["allowed_routes"], 2);
    assert_eq!(lines[3]["error"], "invalid_token");
}
