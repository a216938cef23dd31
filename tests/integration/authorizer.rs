//! The API Gateway Lambda authorizer, in-process, fed the event fixtures of
//! `events/authorizer/` with a real token from this test's service in place
//! of `__TOKEN__`, for all four shapes. HTTP API payload 2.0 answers
//! `isAuthorized`; payload 1.0, REST TOKEN and REST REQUEST answer an IAM
//! policy for exactly the called method, or (with a policy cache) one for
//! every literal route of the stage.

use auth_shared::authorizer::{AuthorizerConfig, AuthorizerError, RouteScopes};
use auth_shared::config::ConfigError;
use auth_tests::authorizer::{
    POLICY_SHAPES, ROUTES, STAGE, authorize, authorize_cached, effect_on_own_arn, fixture,
    token_with,
};
use auth_tests::{CapturedLogs, TestApp};
use serde_json::{Value, json};

/// What a caller without a valid token gets: REST, the error Unauthorized
/// (401); payload 1.0, like payload 2.0, a Deny (403) for nobody.
fn assert_no_valid_token(shape: &str, event: &Value, r: Result<Value, AuthorizerError>) {
    if shape == "http-api-v1" {
        let r = r.unwrap();
        assert_eq!(effect_on_own_arn(&r, event), "Deny", "{shape}");
        assert_eq!(r["principalId"], "anonymous", "{shape}");
        assert!(r.get("context").is_none(), "{shape}: {r}");
    } else {
        assert_eq!(r, Err(AuthorizerError::Unauthorized), "{shape}");
    }
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
async fn each_policy_shape_allows_a_valid_token_exactly_the_called_method() {
    let t = TestApp::spawn().await;
    let (id, token) = token_with(&t, "read").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-valid.json"), &token);
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(effect_on_own_arn(&r, &event), "Allow", "{shape}");
        assert_eq!(r["principalId"], id.as_str(), "{shape}");
        assert!(policy_allows(&r, "GET /v1/whoami"), "{shape}: {r}");
        assert!(
            !policy_allows(&r, "GET /v1/public"),
            "{shape}: only the called ARN"
        );
        let context = &r["context"];
        assert_eq!(context["sub"], id.as_str());
        assert_eq!(context["session_id"], "default");
        assert_eq!(context["scope"], "read");
        assert!(!context["jti"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn each_policy_shape_denies_a_route_needing_a_scope_the_token_lacks() {
    let t = TestApp::spawn().await;
    let (id, token) = token_with(&t, "read write").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-missing-scope.json"), &token);
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(
            effect_on_own_arn(&r, &event),
            "Deny",
            "{shape}: needs documents:write"
        );
        assert_eq!(r["principalId"], id.as_str(), "{shape}");
    }
    let (_, full) = token_with(&t, "write documents:write").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-missing-scope.json"), &full);
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(effect_on_own_arn(&r, &event), "Allow", "{shape}");
    }
}

#[tokio::test]
async fn each_policy_shape_denies_an_unlisted_route_to_every_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read write documents:read documents:write").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-unlisted-route.json"), &token);
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(effect_on_own_arn(&r, &event), "Deny", "{shape}: {r}");
    }
}

#[tokio::test]
async fn a_read_token_is_allowed_a_document_and_its_versions_but_not_an_unlisted_admin_route() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read documents:read").await;
    let call = |path: &str| {
        let mut event = fixture("rest-token-valid.json", &token);
        event["methodArn"] = json!(format!("{STAGE}GET{path}"));
        event
    };
    for path in ["/v1/documents/42", "/v1/documents/42/versions"] {
        let r = authorize(&t, call(path)).await.unwrap();
        assert!(policy_allows(&r, &format!("GET {path}")), "{r}");
        assert!(!policy_allows(&r, "GET /v1/documents/42/admin"), "{r}");
    }
    let r = authorize(&t, call("/v1/documents/42/admin")).await.unwrap();
    assert!(!policy_allows(&r, "GET /v1/documents/42/admin"), "{r}");
    let r = authorize(&t, call("/v1/documents/*")).await.unwrap();
    assert!(
        !policy_allows(&r, "GET /v1/documents/42/admin"),
        "a '*' in the path is no wildcard: {r}"
    );
}

#[tokio::test]
async fn each_policy_shape_treats_an_expired_token_as_no_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    t.clock
        .advance(t.app.policy.ttl_seconds + t.app.policy.leeway_seconds + 1);
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-expired.json"), &token);
        assert_no_valid_token(shape, &event, authorize(&t, event.clone()).await);
    }
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
async fn each_policy_shape_treats_a_revoked_token_as_no_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-revoked.json"), &token);
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(
            effect_on_own_arn(&r, &event),
            "Allow",
            "{shape}: valid before the revoke"
        );
    }
    assert_eq!(t.revoke_bearer(&token).await.status, 200);
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-revoked.json"), &token);
        assert_no_valid_token(shape, &event, authorize(&t, event.clone()).await);
    }
}

#[tokio::test]
async fn each_policy_shape_treats_a_missing_or_non_bearer_token_as_no_token() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    for shape in POLICY_SHAPES {
        let event = fixture(&format!("{shape}-no-header.json"), "");
        assert_no_valid_token(shape, &event, authorize(&t, event.clone()).await);
        let valid = fixture(&format!("{shape}-valid.json"), &token);
        for value in [format!("Basic {token}"), "Bearer ".to_owned()] {
            let mut event = valid.clone();
            if shape == "rest-token" {
                event["authorizationToken"] = json!(value);
            } else {
                event["headers"]["authorization"] = json!(value);
                event["headers"].as_object_mut().unwrap().retain(|name, _| {
                    name == "authorization" || !name.eq_ignore_ascii_case("authorization")
                });
            }
            assert_no_valid_token(shape, &event, authorize(&t, event.clone()).await);
        }
    }
}

#[tokio::test]
async fn a_rest_request_reads_the_authorization_header_in_any_case() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    for name in ["Authorization", "authorization", "AUTHORIZATION"] {
        let mut event = fixture("rest-request-no-header.json", "");
        event["headers"][name] = json!(format!("Bearer {token}"));
        let r = authorize(&t, event.clone()).await.unwrap();
        assert_eq!(effect_on_own_arn(&r, &event), "Allow", "{name}");
    }
}

#[tokio::test]
async fn a_cached_policy_is_the_same_for_every_route_and_allows_exactly_the_literal_routes() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let routes = "GET /v1/whoami=read;POST /v1/documents=write documents:write;GET /v1/public=";
    let for_whoami = authorize_cached(&t, routes, fixture("rest-token-valid.json", &token))
        .await
        .unwrap();
    let for_documents =
        authorize_cached(&t, routes, fixture("rest-token-missing-scope.json", &token))
            .await
            .unwrap();
    assert_eq!(
        for_whoami, for_documents,
        "API Gateway caches the policy by token and reuses it for every route"
    );
    assert!(policy_allows(&for_whoami, "GET /v1/whoami"), "{for_whoami}");
    assert!(policy_allows(&for_whoami, "GET /v1/public"), "{for_whoami}");
    assert!(
        !policy_allows(&for_whoami, "POST /v1/documents"),
        "{for_whoami}"
    );
    assert!(
        !policy_allows(&for_whoami, "GET /v1/whoami/x"),
        "{for_whoami}"
    );
    assert!(
        !policy_allows(&for_whoami, "DELETE /v1/whoami"),
        "{for_whoami}"
    );
}

#[tokio::test]
async fn a_cached_policy_for_a_token_that_may_call_no_route_denies_the_stage() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "write").await;
    let routes = "GET /v1/whoami=read;POST /v1/documents=write documents:write";
    let r = authorize_cached(&t, routes, fixture("rest-token-missing-scope.json", &token))
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
}

#[test]
fn a_policy_cache_refuses_a_route_map_with_a_path_parameter_at_init() {
    let err = AuthorizerConfig::new(RouteScopes::parse(ROUTES).unwrap(), 300).unwrap_err();
    let ConfigError::Invalid { name, reason } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(*name, "AUTHORIZER_ROUTE_SCOPES");
    assert!(reason.contains("GET /v1/documents/{id}"), "{reason}");
    assert!(AuthorizerConfig::new(RouteScopes::parse(ROUTES).unwrap(), 0).is_ok());
}

#[tokio::test]
async fn an_event_of_no_known_shape_is_an_error_not_a_decision() {
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    let mut payload_3 = fixture("http-api-valid.json", &token);
    payload_3["version"] = json!("3.0");
    let mut untyped = fixture("rest-request-valid.json", &token);
    untyped.as_object_mut().unwrap().remove("type");
    let mut bad_arn = fixture("rest-token-valid.json", &token);
    bad_arn["methodArn"] = json!("arn:aws:execute-api:us-east-1:1:*/prod/GET/v1/whoami");
    let mut v1_without_arn = fixture("http-api-v1-valid.json", &token);
    v1_without_arn.as_object_mut().unwrap().remove("methodArn");
    for event in [
        payload_3,
        untyped,
        bad_arn,
        v1_without_arn,
        json!({}),
        json!("x"),
    ] {
        assert_eq!(
            authorize(&t, event.clone()).await,
            Err(AuthorizerError::Internal),
            "{event}"
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
    authorize(&t, fixture("rest-request-unlisted-route.json", &token))
        .await
        .unwrap();
    authorize(&t, fixture("http-api-v1-valid.json", &token))
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
            ("rest_request", "GET /v1/documents/42/admin", "deny"),
            ("http_api_v1", "GET /v1/whoami", "allow"),
            ("rest_token", "GET /v1/whoami", "unauthorized"),
        ]
    );
    for line in &lines[..5] {
        assert_eq!(line["key_id"], id.as_str(), "{line}");
        assert_eq!(line["session_id"], "default", "{line}");
        assert!(line["latency_ms"].as_f64().is_some(), "{line}");
        assert_eq!(line["request_id"], "test-request", "{line}");
    }
    assert_eq!(lines[1]["error"], "insufficient_scope");
    assert_eq!(lines[2]["allowed_routes"], 1);
    assert_eq!(lines[3]["error"], "route_not_configured");
    assert_eq!(lines[5]["error"], "invalid_token");
}

#[tokio::test]
async fn each_call_counts_as_a_request_and_a_refusal_as_a_denial_under_its_listed_route() {
    crate::emf::publish();
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    tracing::callsite::rebuild_interest_cache();
    let t = TestApp::spawn().await;
    let (_, token) = token_with(&t, "read").await;
    for (name, token) in [
        ("http-api-valid.json", token.as_str()),
        ("http-api-missing-scope.json", &token),
        ("rest-request-unlisted-route.json", &token),
        ("http-api-v1-valid.json", &token),
        ("rest-token-valid.json", &token),
    ] {
        authorize(&t, fixture(name, token)).await.unwrap();
    }
    authorize(&t, fixture("rest-token-no-header.json", ""))
        .await
        .unwrap_err();

    use auth_shared::telemetry::metrics::Metric;
    let counted: Vec<_> = crate::emf::request_lines(&logs.text())
        .iter()
        .filter(|l| l["function"] == "authorizer")
        .map(|l| {
            assert_eq!(crate::emf::value(l, Metric::Requests), 1.0, "{l}");
            assert_eq!(crate::emf::value(l, Metric::ServerErrors), 0.0, "{l}");
            (
                l["Route"].as_str().unwrap().to_owned(),
                crate::emf::value(l, Metric::AuthorizerDenied),
                crate::emf::value(l, Metric::ClientErrors),
            )
        })
        .collect();
    let row = |route: &str, denied: f64| (route.to_owned(), denied, denied);
    assert_eq!(
        counted,
        [
            row("GET /v1/whoami", 0.0),
            row("POST /v1/documents", 1.0),
            // Not a listed route: the raw path never becomes a dimension.
            row("unknown", 1.0),
            row("GET /v1/whoami", 0.0),
            // A REST TOKEN event names no route, only a path.
            row("unknown", 0.0),
            row("unknown", 1.0),
        ]
    );
}
