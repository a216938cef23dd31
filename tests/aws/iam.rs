//! Each function's AWS calls against its IAM policy in `template.yaml`. moto
//! enforces no IAM, so a new call would pass every other test and fail only
//! once deployed. Here every path of a function runs against moto through the
//! Lambda's own wiring, the SDK interceptor records the operations, and each
//! must be allowed by that function's policy on the resource it touches;
//! conversely every action the policy grants, on each resource it names,
//! must be used by some path.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use auth_shared::App;
use auth_shared::authorizer::{Authorizer, AuthorizerConfig, RouteScopes};
use auth_shared::aws::calls::AwsCalls;
use auth_shared::aws::rotation::{RotationError, RotationEvent, Rotator, Trail};
use auth_shared::config::TokenPolicy;
use auth_shared::domain::rotation::Spacing;
use auth_shared::domain::usage;
use auth_shared::http::{self, Route};
use auth_tests::ISSUER;
use auth_tests::aws::AwsTestApp;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::RuntimeComponents;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Body;
use lambda_http::http::Method;
use serde_json::{Value, json};
use serde_norway::Value as Yaml;

use auth_tests::expect::key_id;

/// One function as its Lambda runs it: the production wiring on this test's
/// table and secret, warmed up as at a cold start, with its own call record.
struct Lambda {
    name: &'static str,
    routes: &'static [Route],
    app: App,
    calls: AwsCalls,
    queried: Queried,
}

impl Lambda {
    async fn start(t: &AwsTestApp, name: &'static str, routes: &'static [Route]) -> Self {
        let queried = Queried::default();
        let sdk = queried.on(&t.sdk);
        let (app, calls) = auth_shared::aws::app(&t.config(), &sdk, t.clock.clone());
        app.warm_up().await;
        Self {
            name,
            routes,
            app,
            calls,
            queried,
        }
    }

    /// Its recorded calls against its policy.
    fn assert_calls_match_policy(&self) {
        assert_calls_match_policy(self.name, &self.calls, &self.queried);
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            "" => Body::Empty,
            text => Body::Text(text.to_owned()),
        };
        let response = http::handle(
            &self.app,
            self.name,
            self.routes,
            request.body(body).unwrap(),
        )
        .await;
        let Body::Text(text) = response.body() else {
            panic!("{}: {uri} answered a non-text body", self.name)
        };
        (
            response.status().as_u16(),
            serde_json::from_str(text).unwrap(),
        )
    }

    async fn json(&self, uri: &str, body: Value) -> (u16, Value) {
        let json = ("content-type", "application/json");
        self.call(Method::POST, uri, &[json], &body.to_string())
            .await
    }

    async fn form(&self, uri: &str, api_key: Option<&str>, form: &str) -> (u16, Value) {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        let auth = api_key.map(basic);
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        self.call(Method::POST, uri, &headers, form).await
    }

    /// A JSON body with a bearer token, as a backend calls the management API.
    async fn send(&self, method: Method, uri: &str, token: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let headers = [
            ("authorization", &*auth),
            ("content-type", "application/json"),
        ];
        self.call(method, uri, &headers, &body.to_string()).await
    }

    async fn bearer(&self, method: Method, uri: &str, token: &str) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        self.call(method, uri, &[("authorization", &auth)], "")
            .await
    }
}

fn basic(api_key: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{api_key}", key_id(api_key)))
    )
}

/// A well-formed key that was never issued: it reaches the store.
const UNKNOWN_KEY: &str = "bauth_0123456789abcdef_0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_login_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let policy = TokenPolicy {
        max_sessions_per_key: 2,
        ..TokenPolicy::with_issuer(ISSUER)
    };
    let t = AwsTestApp::spawn_with(policy.clone()).await;
    let key = t.create_key("read").await;
    let client = t.create_key("read").await;
    let login = Lambda::start(&t, "login", Route::LOGIN).await;
    let as_json = |session: &str| json!({"api_key": key, "session_id": session});

    let (status, first) = login.json("/auth/login", as_json("a")).await;
    assert_eq!(status, 200, "a new session: {first}");
    let (status, again) = login.json("/auth/login", as_json("a")).await;
    assert_eq!(
        (status, &again["access_token"]),
        (200, &first["access_token"]),
        "reuse"
    );
    let (status, body) = login
        .form("/auth/login", None, &format!("api_key={key}&session_id=b"))
        .await;
    assert_eq!(status, 200, "a second session, by form: {body}");
    let (status, body) = login.json("/auth/login", as_json("c")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_sessions")),
        "the session cap"
    );
    t.clock
        .advance(policy.ttl_seconds - policy.refresh_window_seconds + 1);
    let (status, refreshed) = login.json("/auth/login", as_json("a")).await;
    assert_eq!(status, 200, "a refresh inside the window: {refreshed}");
    assert_ne!(refreshed["access_token"], first["access_token"]);

    let grant = "grant_type=client_credentials";
    let (status, body) = login.form("/oauth2/token", Some(&client), grant).await;
    assert_eq!(status, 200, "client credentials by Basic: {body}");
    let by_post = format!(
        "{grant}&client_id={}&client_secret={client}",
        key_id(&client)
    );
    let (status, body) = login.form("/oauth2/token", None, &by_post).await;
    assert_eq!(status, 200, "client credentials by form fields: {body}");
    let (status, body) = login
        .call(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!(status, 200, "metadata: {body}");

    let (status, _) = login
        .json("/auth/login", json!({"api_key": UNKNOWN_KEY}))
        .await;
    assert_eq!(status, 401, "an unknown key");
    let (status, _) = login
        .json("/auth/login", json!({"api_key": "garbage"}))
        .await;
    assert_eq!(status, 401, "a malformed key");
    let (status, _) = login.form("/oauth2/token", Some(UNKNOWN_KEY), grant).await;
    assert_eq!(status, 401, "an unknown client");

    login.assert_calls_match_policy();
}

#[tokio::test]
async fn the_verify_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let other = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    let others_token = t.token(&other, "default").await;
    let verify = Lambda::start(&t, "verify", Route::VERIFY).await;

    let (status, body) = verify.bearer(Method::GET, "/auth/verify", &token).await;
    assert_eq!(status, 200, "verify: {body}");
    t.clock.advance(usage::RESOLUTION_SECONDS);
    let (status, body) = verify.bearer(Method::GET, "/auth/verify", &token).await;
    assert_eq!(
        status, 200,
        "verify an hour after the key's last use: {body}"
    );
    let (status, _) = verify
        .bearer(Method::POST, "/auth/verify?scope=write", &token)
        .await;
    assert_eq!(status, 403, "a missing scope");
    let (status, _) = verify.bearer(Method::GET, "/auth/verify", "garbage").await;
    assert_eq!(status, 401, "a malformed token");

    let (status, body) = introspect(&verify, &key, &format!("token={token}")).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "own token");
    let (status, body) = introspect(&verify, &key, &format!("token={others_token}")).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &json!(true)),
        "another key's token"
    );
    let (status, body) = introspect(&verify, &key, "token=garbage").await;
    assert_eq!(
        (status, &body["active"]),
        (200, &json!(false)),
        "a malformed token"
    );
    let (status, _) = introspect(&verify, &key, "").await;
    assert_eq!(status, 400, "no token");
    let (status, _) = introspect(&verify, UNKNOWN_KEY, &format!("token={token}")).await;
    assert_eq!(status, 401, "an unknown caller");

    verify.assert_calls_match_policy();
}

async fn introspect(verify: &Lambda, caller: &str, form: &str) -> (u16, Value) {
    verify.form("/oauth2/introspect", Some(caller), form).await
}

#[tokio::test]
async fn the_revoke_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let revoke = Lambda::start(&t, "revoke", Route::REVOKE).await;
    let removed = |(status, body): (u16, Value)| {
        assert_eq!(status, 200, "{body}");
        body["sessions_revoked"].as_u64().unwrap()
    };

    let token = t.token(&key, "a").await;
    assert_eq!(
        removed(revoke.bearer(Method::POST, "/auth/revoke", &token).await),
        1,
        "by bearer token"
    );
    let token = t.token(&key, "a").await;
    assert_eq!(
        removed(revoke.json("/auth/revoke", json!({"token": token})).await),
        1,
        "by token"
    );
    assert_eq!(
        removed(
            revoke
                .json("/auth/revoke", json!({"token": "garbage"}))
                .await
        ),
        0,
        "a malformed token"
    );
    t.token(&key, "b").await;
    let by_session = json!({"api_key": key, "session_id": "b"});
    assert_eq!(
        removed(revoke.json("/auth/revoke", by_session).await),
        1,
        "by session"
    );
    t.token(&key, "default").await;
    assert_eq!(
        removed(revoke.json("/auth/revoke", json!({"api_key": key})).await),
        1,
        "the default session"
    );

    let token = t.token(&key, "a").await;
    let (status, body) = revoke
        .form("/oauth2/revoke", Some(&key), &format!("token={token}"))
        .await;
    assert_eq!(status, 200, "OAuth2 revoke: {body}");
    assert_eq!(
        t.verify(&token, None).await.status,
        401,
        "revoked by OAuth2"
    );
    let other = t.create_key("read").await;
    let others_token = t.token(&other, "default").await;
    let (status, _) = revoke
        .form(
            "/oauth2/revoke",
            Some(&key),
            &format!("token={others_token}"),
        )
        .await;
    assert_eq!(status, 200, "OAuth2 revoke of another client's token");
    assert_eq!(
        t.verify(&others_token, None).await.status,
        200,
        "left alone"
    );

    t.token(&key, "a").await;
    t.token(&key, "b").await;
    let all = json!({"api_key": key, "all_sessions": true});
    assert_eq!(
        removed(revoke.json("/auth/revoke", all).await),
        2,
        "all sessions"
    );
    t.token(&key, "c").await;
    let (status, body) = revoke
        .json(
            "/auth/revoke",
            json!({"api_key": key, "revoke_api_key": true}),
        )
        .await;
    assert_eq!(
        (status, &body["api_key_revoked"]),
        (200, &json!(true)),
        "the key: {body}"
    );

    let (status, _) = revoke
        .json(
            "/auth/revoke",
            json!({"api_key": UNKNOWN_KEY, "all_sessions": true}),
        )
        .await;
    assert_eq!(status, 401, "an unknown key");

    revoke.assert_calls_match_policy();
}

#[tokio::test]
async fn the_authorizer_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let routes = "GET /v1/whoami=read;POST /v1/documents=write";
    let lambda = Lambda::start(&t, "authorizer", &[]).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/authorizer");
    let mut names: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "fixtures in {}", fixtures.display());
    let per_request = Authorizer::new(lambda.app.clone(), RouteScopes::parse(routes).unwrap());
    let config = AuthorizerConfig::new(RouteScopes::parse(routes).unwrap(), 300).unwrap();
    let cached = Authorizer::with_config(lambda.app.clone(), config);

    let live = t.token(&key, "live").await;
    let revoked = t.token(&key, "revoked").await;
    assert_eq!(t.revoke_bearer(&revoked).await.status, 200);
    let expired = t.app.policy.ttl_seconds + t.app.policy.leeway_seconds + 1;
    let mut allowed = 0;
    // The live token again an hour on: its key's last use is written.
    let hour = usage::RESOLUTION_SECONDS;
    for (token, later) in [
        (&*live, 0),
        (&*revoked, 0),
        ("garbage", 0),
        (&*live, hour),
        (&*live, expired - hour),
    ] {
        t.clock.advance(later);
        for name in &names {
            let text = std::fs::read_to_string(fixtures.join(name)).unwrap();
            let event: Value = serde_json::from_str(&text.replace("__TOKEN__", token)).unwrap();
            for authorizer in [&per_request, &cached] {
                if let Ok(answer) = authorizer.handle(event.clone(), "iam").await {
                    let answer = serde_json::to_value(answer).unwrap();
                    let allows = answer["isAuthorized"] == true
                        || answer["policyDocument"]["Statement"][0]["Effect"] == "Allow";
                    allowed += usize::from(allows);
                }
            }
        }
    }
    assert!(
        allowed > 0,
        "no event was allowed: the store was never read for a live token"
    );

    lambda.assert_calls_match_policy();
}

#[tokio::test]
async fn the_admin_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let t = AwsTestApp::spawn().await;
    let root = t
        .create_key("admin:keys:read admin:keys:write admin:audit:read")
        .await;
    let token = t.token(&root, "admin").await;
    let admin = Lambda::start(&t, "admin", Route::ADMIN).await;
    let ok = |(status, body): (u16, Value), what: &str| {
        assert!((200..300).contains(&status), "{what}: {status} {body}");
        body
    };
    let id_of = |body: &Value| body["key"]["key_id"].as_str().unwrap().to_owned();
    // A second apart, so that newest first is one order.
    let later = || t.clock.advance(1);

    let new = |name: &str| json!({"name": name, "scopes": "read", "owner": "acme", "meta": {"plan": "pro"}});
    later();
    let first = ok(
        admin
            .send(Method::POST, "/admin/v1/keys", &token, new("one"))
            .await,
        "create",
    );
    later();
    let created = ok(
        admin
            .send(Method::POST, "/admin/v1/keys", &token, new("two"))
            .await,
        "create",
    );
    let (id, api_key) = (id_of(&created), created["api_key"].as_str().unwrap());
    assert_eq!(created["key"]["owner"], "acme", "{created}");
    assert_eq!(created["key"]["meta"], json!({"plan": "pro"}), "{created}");

    for list in [
        "/admin/v1/keys?limit=1",
        "/admin/v1/keys?owner=acme&limit=1",
    ] {
        let page = ok(admin.bearer(Method::GET, list, &token).await, list);
        assert_eq!(
            page["keys"][0]["key_id"],
            id.as_str(),
            "{list}: newest first: {page}"
        );
        let cursor = page["next_cursor"].as_str().unwrap();
        let next = format!("{list}&cursor={cursor}");
        let page = ok(admin.bearer(Method::GET, &next, &token).await, &next);
        assert_eq!(
            page["keys"][0]["key_id"],
            id_of(&first).as_str(),
            "{next}: {page}"
        );
    }
    let key = format!("/admin/v1/keys/{id}");
    let shown = ok(admin.bearer(Method::GET, &key, &token).await, "show");
    assert_eq!(shown["name"], "two", "{shown}");
    let patch = json!({"name": "renamed", "meta": null}).to_string();
    let merge = ("content-type", "application/merge-patch+json");
    let auth = format!("Bearer {token}");
    let patched = ok(
        admin
            .call(
                Method::PATCH,
                &key,
                &[("authorization", &auth), merge],
                &patch,
            )
            .await,
        "patch",
    );
    assert_eq!(
        (&patched["name"], &patched["meta"]),
        (&json!("renamed"), &Value::Null)
    );

    t.token(api_key, "a").await;
    t.token(api_key, "b").await;
    let sessions = ok(
        admin
            .bearer(Method::GET, &format!("{key}/sessions"), &token)
            .await,
        "sessions",
    );
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );
    let one = format!("{key}/sessions/a/revoke");
    let revoked = ok(
        admin.bearer(Method::POST, &one, &token).await,
        "one session",
    );
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let all = format!("{key}/sessions/revoke");
    let revoked = ok(
        admin.bearer(Method::POST, &all, &token).await,
        "every session",
    );
    assert_eq!(revoked["revoked"], true, "{revoked}");

    // An hour on, the root key's use is written again.
    t.clock.advance(usage::RESOLUTION_SECONDS);
    let rotate = format!("{key}/rotate");
    let rotated = ok(
        admin
            .send(Method::POST, &rotate, &token, json!({"grace_seconds": 0}))
            .await,
        "rotate",
    );
    assert_ne!(rotated["api_key"].as_str(), Some(api_key), "{rotated}");
    later();
    let revoke = format!("{key}/revoke");
    let revoked = ok(admin.bearer(Method::POST, &revoke, &token).await, "revoke");
    assert_eq!(revoked["status"], "revoked", "{revoked}");

    for events in [
        format!("/admin/v1/events?key_id={id}"),
        "/admin/v1/events?owner=acme".to_owned(),
        "/admin/v1/events".to_owned(),
    ] {
        let page = ok(admin.bearer(Method::GET, &events, &token).await, &events);
        assert_eq!(
            page["events"][0]["action"], "key.revoked",
            "{events}: newest first: {page}"
        );
    }

    let (status, _) = admin.bearer(Method::GET, &key, "garbage").await;
    assert_eq!(status, 401, "a malformed token");
    let unknown = "/admin/v1/keys/0123456789abcdef";
    let (status, _) = admin.bearer(Method::GET, unknown, &token).await;
    assert_eq!(status, 404, "an unknown key");

    admin.assert_calls_match_policy();
}

#[tokio::test]
async fn the_rotate_function_makes_only_the_calls_its_policy_allows_and_uses_every_grant() {
    let t = AwsTestApp::spawn().await;
    let calls = AwsCalls::default();
    // The function's wiring: its trail on the counted DynamoDB client, so
    // the event's write is held to the policy too.
    let trail = Trail::of_function(calls.dynamodb(&t.sdk), &|name| {
        (name == "TABLE_NAME").then(|| t.table.clone())
    })
    .unwrap();
    let rotator = Rotator::new(calls.secrets_manager(&t.sdk), Spacing::of(&t.config()))
        .with_clock(t.clock.clone())
        .with_trail(trail);
    let event = |step: &str, token: &str| -> RotationEvent {
        serde_json::from_value(json!({
            "Step": step,
            "SecretId": t.secret_arn,
            "ClientRequestToken": token,
        }))
        .unwrap()
    };
    let steps = ["createSecret", "setSecret", "testSecret", "finishSecret"];

    let first = uuid::Uuid::new_v4().to_string();
    let early = rotator.handle(event("testSecret", &first)).await;
    assert!(
        matches!(early, Err(RotationError::State(_))),
        "a step before createSecret: {early:?}"
    );
    for step in steps {
        rotator.handle(event(step, &first)).await.unwrap();
    }
    rotator.handle(event("finishSecret", &first)).await.unwrap();

    let second = uuid::Uuid::new_v4().to_string();
    let refused = rotator.handle(event(steps[0], &second)).await;
    assert!(
        matches!(refused, Err(RotationError::TooSoon(_))),
        "a rotation too soon: {refused:?}"
    );

    assert_calls_match_policy("rotate", &calls, &Queried::default());
}

/// One statement of a function's policy, its resources as written
/// (`!GetAtt AuthTable.Arn`).
#[derive(Debug)]
struct Statement {
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
}

const TABLE: &str = "!GetAtt AuthTable.Arn";
const SECRET: &str = "!Ref SigningSecret";

/// The resources, as the template names them, that a function's calls of
/// `action` went to: a Query to the table or its indexes, as `queried` saw.
fn resources_of(action: &str, queried: &Queried) -> BTreeSet<String> {
    match action.split_once(':') {
        Some(("dynamodb", "Query")) => {
            let targets = queried.targets();
            assert!(
                !targets.is_empty(),
                "a Query was recorded, but none was seen on the wire"
            );
            targets
        }
        Some(("dynamodb", _)) => BTreeSet::from([TABLE.to_owned()]),
        Some(("secretsmanager", _)) => BTreeSet::from([SECRET.to_owned()]),
        _ => panic!("{action}: no resource of this service is known to this test"),
    }
}

/// The recorded calls of the function built as `binary` against its
/// policy: each allowed on the resources it went to, and each grant, on
/// each resource it names, used.
fn assert_calls_match_policy(binary: &str, calls: &AwsCalls, queried: &Queried) {
    let used = calls.operations();
    assert!(!used.is_empty(), "{binary}: no AWS call was recorded");
    let (function, statements) = policy_of(binary);
    let matches =
        |s: &Statement, action: &str| s.actions.iter().any(|a| a.eq_ignore_ascii_case(action));
    let mut touched = BTreeSet::new();
    for action in &used {
        let denied = statements.iter().any(|s| !s.allow && matches(s, action));
        let allowing: Vec<_> = statements
            .iter()
            .filter(|s| s.allow && matches(s, action))
            .collect();
        assert!(
            !denied && !allowing.is_empty(),
            "{function} ({binary}) calls {action}, which its policy in template.yaml does not allow: \
             add {action} to {function}'s Policies"
        );
        for resource in resources_of(action, queried) {
            assert!(
                allowing.iter().any(|s| s.resources.contains(&resource)),
                "{function} ({binary}) calls {action} on {resource}, but its policy allows it only on {:?}",
                allowing
                    .iter()
                    .flat_map(|s| &s.resources)
                    .collect::<Vec<_>>()
            );
            touched.insert((action.to_ascii_lowercase(), resource));
        }
    }
    for s in statements.iter().filter(|s| s.allow) {
        for action in &s.actions {
            assert!(
                !action.contains(['*', '?']),
                "{function} ({binary}) is granted {action}: grant the exact actions it calls"
            );
            for resource in &s.resources {
                assert!(
                    touched.contains(&(action.to_ascii_lowercase(), resource.clone())),
                    "{function} ({binary}) is granted {action} on {resource}, but none of its \
                     paths calls it there: remove it from template.yaml (least privilege), or \
                     drive the path that needs it in this test (calls seen: {touched:?})"
                );
            }
        }
    }
}

/// Where a function's DynamoDB Queries went, read off the requests it
/// sent: the table, or one of its indexes (IAM grants Query on an index
/// only on the index's ARN). The operation itself is the SDK
/// interceptor's record; this sees only the wire.
#[derive(Debug, Default, Clone)]
struct Queried(Arc<Mutex<BTreeSet<String>>>);

impl Queried {
    /// `sdk` on the SDK's own default HTTP client, seen by this record.
    fn on(&self, sdk: &SdkConfig) -> SdkConfig {
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build_https();
        sdk.to_builder()
            .http_client(QueryWatch {
                inner,
                queried: self.clone(),
            })
            .build()
    }

    fn targets(&self) -> BTreeSet<String> {
        self.0.lock().unwrap().clone()
    }

    fn see(&self, request: &HttpRequest) {
        let is_query = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target == "DynamoDB_20120810.Query");
        if !is_query {
            return;
        }
        let body: Value = serde_json::from_slice(request.body().bytes().unwrap()).unwrap();
        let target = match body.get("IndexName") {
            None => TABLE.to_owned(),
            Some(index) => format!("!Sub ${{AuthTable.Arn}}/index/{}", index.as_str().unwrap()),
        };
        self.0.lock().unwrap().insert(target);
    }
}

/// An HTTP client that shows each request to [`Queried`] before sending it.
#[derive(Debug)]
struct QueryWatch<C> {
    inner: C,
    queried: Queried,
}

impl HttpClient for QueryWatch<SharedHttpClient> {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(QueryWatch {
            inner: self.inner.http_connector(settings, components),
            queried: self.queried.clone(),
        })
    }
}

impl HttpConnector for QueryWatch<SharedHttpConnector> {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.queried.see(&request);
        self.inner.call(request)
    }
}

/// The logical id and policy statements of the function whose build
/// binary is `binary`.
fn policy_of(binary: &str) -> (String, Vec<Statement>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let template: Yaml = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let functions: Vec<_> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            r["Type"] == "AWS::Serverless::Function"
                && r["Metadata"]["BuildProperties"]["Binary"] == binary
        })
        .collect();
    let [(id, resource)] = functions.as_slice() else {
        panic!(
            "template.yaml has {} functions built as {binary}",
            functions.len()
        )
    };
    let id = id.as_str().unwrap().to_owned();
    let properties = &resource["Properties"];
    assert!(
        properties.get("Role").is_none(),
        "{id}: a Role is not read by this test; keep the grants in Policies"
    );
    let statements = one_or_many(&properties["Policies"])
        .iter()
        .flat_map(|policy| {
            assert!(
                policy.get("Statement").is_some(),
                "{id}: policy {policy:?} is not an inline policy document; teach this test \
                 SAM policy templates or managed policies before using one"
            );
            one_or_many(&policy["Statement"])
        })
        .map(|s| Statement {
            allow: match s["Effect"].as_str() {
                Some("Allow") => true,
                Some("Deny") => false,
                effect => panic!("{id}: a statement with Effect {effect:?}"),
            },
            actions: one_or_many(&s["Action"])
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
            resources: one_or_many(&s["Resource"])
                .iter()
                .map(|r| written(&id, r))
                .collect(),
        })
        .collect();
    (id, statements)
}

/// A YAML list, or a single value as a list of one.
fn one_or_many(value: &Yaml) -> Vec<Yaml> {
    match value {
        Yaml::Sequence(items) => items.clone(),
        Yaml::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

/// A resource as written: a string, or a CloudFormation short tag and its
/// argument (`!Ref SigningSecret`).
fn written(function: &str, resource: &Yaml) -> String {
    match resource {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(tagged) => match tagged.value.as_str() {
            Some(argument) => format!("{} {argument}", tagged.tag),
            None => panic!("{function}: resource {resource:?} is not a tag on a string"),
        },
        other => panic!("{function}: resource {other:?} is neither a string nor a tag"),
    }
}
