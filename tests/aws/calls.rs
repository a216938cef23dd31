//! The AWS call budget per operation, counted by the SDK interceptor on the
//! app's own clients: verify 1, login reusing 1, login minting 2, and no
//! Secrets Manager call per request once the key cache is warm.

use auth_shared::aws::calls::{AwsCalls, CallCount};
use auth_shared::aws::rotation::Rotator;
use auth_shared::config::TokenPolicy;
use auth_shared::domain::api_key::{ApiKey, KeyId};
use auth_shared::domain::rotation::{Pace, Spacing};
use auth_shared::domain::usage;
use auth_shared::telemetry::Audit;
use auth_tests::ISSUER;
use auth_tests::aws::AwsTestApp;
use auth_tests::expect::key_id;
use secrecy::ExposeSecret;
use serde_json::json;

use auth_tests::expect::introspect;

/// Calls `work` made, as (DynamoDB, Secrets Manager).
async fn calls_of<F: std::future::Future>(calls: &AwsCalls, work: F) -> (u64, u64) {
    with_calls(calls, work).await.1
}

/// What `work` returned, and the calls it made as [`calls_of`] counts them.
async fn with_calls<F: std::future::Future>(calls: &AwsCalls, work: F) -> (F::Output, (u64, u64)) {
    let before = calls.count();
    let output = work.await;
    let CallCount {
        dynamodb,
        secrets_manager,
    } = calls.count();
    (
        output,
        (
            dynamodb - before.dynamodb,
            secrets_manager - before.secrets_manager,
        ),
    )
}

/// Writes `key`'s last use as now, as its first request of the hour would:
/// the budgets below are those of the requests after it.
async fn mark_used(t: &AwsTestApp, key: &str) {
    let id = KeyId::parse(key_id(key)).unwrap();
    let now = t.clock.seconds();
    assert!(t.store().touch_key(&id, now, now + 1).await.unwrap());
}

#[tokio::test]
async fn each_operation_stays_within_its_aws_call_budget() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    mark_used(&t, &key).await;
    let (_, cold_secrets) = calls_of(
        &t.calls,
        t.login(json!({"api_key": key, "session_id": "a"})),
    )
    .await;
    assert_eq!(cold_secrets, 1, "a cold key cache reads AWSCURRENT alone");

    let token = t.token(&key, "a").await;
    assert_eq!(
        calls_of(
            &t.calls,
            t.login(json!({"api_key": key, "session_id": "a"}))
        )
        .await,
        (1, 0),
        "login reusing"
    );
    assert_eq!(
        calls_of(
            &t.calls,
            t.login(json!({"api_key": key, "session_id": "b"}))
        )
        .await,
        (3, 0),
        "login opening a session: the read, the key's session times, the conditional write"
    );
    assert_eq!(
        calls_of(&t.calls, t.verify(&token, Some("read"))).await,
        (1, 0),
        "verify"
    );

    t.clock.advance(7200 - 299);
    mark_used(&t, &key).await;
    let refreshed = calls_of(
        &t.calls,
        t.login(json!({"api_key": key, "session_id": "a"})),
    )
    .await;
    assert_eq!(
        refreshed,
        (2, 0),
        "login minting a successor in the refresh window"
    );
    assert_eq!(
        calls_of(&t.calls, t.revoke_bearer(&token)).await,
        (2, 0),
        "revoke by token: its key read for the owner its event names, the delete with the event"
    );
    assert_eq!(
        calls_of(
            &t.calls,
            t.revoke(json!({"api_key": key, "all_sessions": true}))
        )
        .await,
        (3, 0),
        "revoking every session: the key read, one conditional write, the count of what ended"
    );
    assert_eq!(
        calls_of(
            &t.calls,
            t.revoke(json!({"api_key": key, "revoke_api_key": true}))
        )
        .await,
        (3, 0),
        "revoking the key: the key read, one conditional write, the count of what ended"
    );
}

#[tokio::test]
async fn with_a_verify_cache_a_verify_within_it_costs_no_aws_call() {
    let t = AwsTestApp::spawn_with(TokenPolicy {
        verify_cache_seconds: 5,
        ..TokenPolicy::with_issuer(ISSUER)
    })
    .await;
    let key = t.create_key("read").await;
    mark_used(&t, &key).await;
    let token = t.token(&key, "a").await;
    let verify = || t.verify(&token, Some("read"));
    assert_eq!(
        calls_of(&t.calls, verify()).await,
        (1, 0),
        "the first reads"
    );
    t.clock.advance(4);
    assert_eq!(calls_of(&t.calls, verify()).await, (0, 0), "reused");
    t.clock.advance(1);
    assert_eq!(
        calls_of(&t.calls, verify()).await,
        (1, 0),
        "as old as the setting: read again"
    );
}

#[tokio::test]
async fn introspection_reads_the_caller_and_the_token_state_in_one_call() {
    let t = AwsTestApp::spawn().await;
    let resource = t.create_key("introspect").await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "a").await;
    for (caller, token, active, what) in [
        (&resource, token.as_str(), true, "another key's token"),
        (&key, token.as_str(), true, "the caller's own token"),
        (
            &resource,
            "garbage",
            false,
            "a malformed token: the caller's key alone",
        ),
    ] {
        let (answer, calls) = with_calls(&t.calls, introspect(&t, caller, token)).await;
        assert_eq!(
            (answer.status, &answer.body["active"]),
            (200, &json!(active)),
            "{what}: {:?}",
            answer.body
        );
        assert_eq!(calls, (1, 0), "{what}");
    }
}

#[tokio::test]
async fn a_rejected_token_costs_no_aws_call() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "a").await;
    let tampered = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        calls_of(&t.calls, t.verify(&tampered, None)).await,
        (0, 0),
        "bad signature"
    );
    assert_eq!(
        calls_of(&t.calls, t.verify("garbage", None)).await,
        (0, 0),
        "malformed"
    );
    // One character of the secret changed: well formed, wrong checksum.
    let mut typo = key.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let (dynamodb, _) = calls_of(&t.calls, t.login(json!({"api_key": typo}))).await;
    assert_eq!(
        dynamodb, 0,
        "a key failing its checksum never reaches the table"
    );
}

#[tokio::test]
async fn a_keys_first_use_in_an_hour_costs_one_more_write_once_per_environment() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    assert_eq!(
        calls_of(
            &t.calls,
            t.login(json!({"api_key": key, "session_id": "a"}))
        )
        .await,
        (4, 1),
        "the first login: read, session times, write, and the key's last use (and the cold key cache)"
    );
    let token = t.token(&key, "a").await;
    assert_eq!(
        calls_of(&t.calls, t.verify(&token, None)).await,
        (1, 0),
        "the use was written: verify is one read again"
    );
    t.clock.advance(usage::RESOLUTION_SECONDS);
    assert_eq!(
        calls_of(&t.calls, t.verify(&token, None)).await,
        (2, 0),
        "an hour on, the first verify writes the use again"
    );
    assert_eq!(
        calls_of(&t.calls, t.verify(&token, None)).await,
        (1, 0),
        "and the next one does not"
    );
    let id = KeyId::parse(key_id(&key)).unwrap();
    let stored = t.store().key(&id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(t.clock.seconds()));
    assert_eq!(stored.version, 1, "a last use changes no version");
}

#[tokio::test]
async fn warming_up_at_init_leaves_the_first_request_only_its_own_call() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    mark_used(&t, &key).await;
    assert_eq!(
        calls_of(&t.calls, t.app.warm_up()).await,
        (1, 1),
        "one DynamoDB read, AWSCURRENT alone"
    );
    assert_eq!(
        calls_of(&t.calls, t.login(json!({"api_key": key}))).await,
        (3, 0),
        "first login after warm-up, opening the default session"
    );
}

#[tokio::test]
async fn the_previous_signing_key_is_read_once_when_a_token_names_it() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let old = t.token(&key, "a").await;
    Rotator::new(
        aws_sdk_secretsmanager::Client::new(&t.sdk),
        Spacing::of(&t.config()),
    )
    .rotate(&t.secret_arn, Pace::Spaced)
    .await
    .unwrap();
    // An environment started after the rotation: its key cache begins empty.
    let (cold, cold_calls) = auth_shared::aws::app(&t.config(), &t.sdk, t.app.clock.clone());
    assert_eq!(
        calls_of(&cold_calls, cold.warm_up()).await,
        (1, 1),
        "warm-up"
    );
    let verify = || async {
        auth_shared::domain::verify::verify(&cold, Some(&old), None, &mut Audit::default())
            .await
            .map(|v| v.claims.sid)
            .ok()
    };
    let (verified, calls) = with_calls(&cold_calls, verify()).await;
    assert_eq!(verified.as_deref(), Some("a"), "the old token verifies");
    assert_eq!(calls, (1, 2), "AWSCURRENT again with AWSPREVIOUS, once");
    let (verified, calls) = with_calls(&cold_calls, verify()).await;
    assert_eq!(verified.as_deref(), Some("a"));
    assert_eq!(calls, (1, 0), "then from the cache");
}

#[tokio::test]
async fn warming_up_against_a_dead_backend_lets_init_finish_and_the_request_answer_503() {
    let t = AwsTestApp::spawn().await;
    let dead = auth_tests::aws::dead_endpoint().await;
    let (app, _) = auth_shared::aws::app(&t.config(), &dead, t.app.clock.clone());
    app.warm_up().await;
    let mut dead = t;
    dead.app = app;
    let key = ApiKey::generate().unwrap();
    let answer = dead
        .login(json!({"api_key": key.expose().expose_secret()}))
        .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn each_admin_operation_stays_within_its_aws_call_budget() {
    use crate::admin::{ALL_ADMIN, call, key_path, made, root};
    use lambda_http::http::Method;

    let t = AwsTestApp::spawn().await;
    let (root_key, token) = root(&t, ALL_ADMIN, Some("acme")).await;
    mark_used(&t, &root_key).await;
    let (id, api_key) = made(&t, &token, json!({"name": "warm", "scopes": "read"})).await;
    mark_used(&t, &api_key).await;
    t.token(&api_key, "s").await;
    let op = |method: Method, path: String, body: Option<serde_json::Value>| {
        let (t, token) = (&t, &token);
        async move {
            let r = call(t, token, method, &path, body).await;
            assert!(r.status < 300, "{path}: {r:?}");
        }
    };
    let budgets = [
        (
            "create",
            Method::POST,
            "/admin/v1/keys".to_owned(),
            Some(json!({"name": "n", "scopes": "read"})),
            (2, 0),
        ),
        (
            "list",
            Method::GET,
            "/admin/v1/keys?limit=10".to_owned(),
            None,
            (2, 0),
        ),
        ("show", Method::GET, key_path(&id, ""), None, (2, 0)),
        (
            "patch",
            Method::PATCH,
            key_path(&id, ""),
            Some(json!({"name": "renamed"})),
            (3, 0),
        ),
        (
            "sessions",
            Method::GET,
            key_path(&id, "/sessions"),
            None,
            (3, 0),
        ),
        (
            "revoke a session",
            Method::POST,
            key_path(&id, "/sessions/s/revoke"),
            None,
            (4, 0),
        ),
        (
            "revoke all sessions",
            Method::POST,
            key_path(&id, "/sessions/revoke"),
            None,
            (4, 0),
        ),
        (
            "rotate",
            Method::POST,
            key_path(&id, "/rotate"),
            None,
            (3, 0),
        ),
        (
            "events",
            Method::GET,
            format!("/admin/v1/events?key_id={id}"),
            None,
            (3, 0),
        ),
        (
            "events of the owner",
            Method::GET,
            "/admin/v1/events".to_owned(),
            None,
            (2, 0),
        ),
        (
            "revoke",
            Method::POST,
            key_path(&id, "/revoke"),
            None,
            (3, 0),
        ),
    ];
    let mut counted = Vec::new();
    for (name, method, path, body, _) in &budgets {
        let calls = calls_of(&t.calls, op(method.clone(), path.clone(), body.clone())).await;
        counted.push((*name, calls));
    }
    let expected: Vec<(&str, (u64, u64))> = budgets.iter().map(|b| (b.0, b.4)).collect();
    assert_eq!(
        counted, expected,
        "each call: the caller's token check (one read), then the operation's own"
    );
}

#[tokio::test]
async fn the_customer_portal_stays_within_its_aws_call_budget() {
    use crate::admin::{call, root};
    use lambda_http::http::Method;

    let t = AwsTestApp::spawn().await;
    let (root_key, token) = root(&t, "admin:portal", None).await;
    mark_used(&t, &root_key).await;
    let body = json!({"owner": "acme", "allowed_scopes": "read"});
    let (link, made) = with_calls(
        &t.calls,
        call(
            &t,
            &token,
            Method::POST,
            "/admin/v1/portal-sessions",
            Some(body),
        ),
    )
    .await;
    assert_eq!(link.status, 201, "{link:?}");
    assert_eq!(
        made,
        (2, 0),
        "the token check, then the link and its event in one transaction"
    );
    let code = link.body["url"]
        .as_str()
        .unwrap()
        .rsplit_once("#code=")
        .unwrap()
        .1;
    let exchange = json!({"code": code}).to_string();
    let (portal, traded) = with_calls(
        &t.calls,
        t.request(
            Method::POST,
            "/admin/v1/portal-sessions/exchange",
            &[("content-type", "application/json")],
            &exchange,
        ),
    )
    .await;
    assert_eq!(traded, (1, 0), "one conditional write redeems the code");
    let portal = portal.token();
    let listed = calls_of(
        &t.calls,
        call(&t, &portal, Method::GET, "/admin/v1/keys", None),
    )
    .await;
    assert_eq!(
        listed,
        (2, 0),
        "the portal session read, then the owner's index query"
    );
}

#[tokio::test]
async fn each_request_line_counts_the_dynamodb_calls_the_request_made() {
    use auth_shared::telemetry::metrics::Metric;
    crate::emf::publish();
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    mark_used(&t, &key).await;
    let token = t.token(&key, "a").await;
    let logs = auth_tests::CapturedLogs::default();
    let _guard = logs.install();
    let mut made = Vec::new();
    for _ in 0..2 {
        made.push(calls_of(&t.calls, t.verify(&token, None)).await.0);
        let new_session =
            t.login(json!({"api_key": key, "session_id": uuid::Uuid::new_v4().to_string()}));
        made.push(calls_of(&t.calls, new_session).await.0);
    }
    let logged: Vec<u64> = crate::emf::request_lines(&logs.text())
        .iter()
        .map(|l| crate::emf::value(l, Metric::DynamoDbCalls) as u64)
        .collect();
    assert_eq!(made, [1, 3, 1, 3], "the budgets");
    assert_eq!(
        logged, made,
        "each line's DynamoDbCalls is what its request made"
    );
}
