//! `openapi.yaml` kept true: every route is documented with exactly the
//! methods it takes, every documented path is a route, and the real handler's
//! answers (the success and every documented error of every operation) match
//! the documented status, headers and body schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_shared::config::TokenPolicy;
use auth_shared::http::Route;
use auth_shared::http::admin::Endpoint;
use auth_tests::aws::dead_endpoint;
use auth_tests::{TestApp, TestResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::Method;
use serde_json::{Value, json};

use crate::verify::key_id;

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// (path, method, status) triples, as documented or as seen.
type Answers = BTreeSet<(String, String, u16)>;

struct Spec(Value);

impl Spec {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        Self(doc)
    }

    /// Every documented path and its methods, upper case.
    fn methods(&self) -> BTreeMap<String, BTreeSet<String>> {
        let paths = self.0["paths"].as_object().unwrap();
        paths
            .iter()
            .map(|(path, item)| {
                let methods = item.as_object().unwrap().keys();
                let methods = methods.filter(|m| METHODS.contains(&m.to_uppercase().as_str()));
                (path.clone(), methods.map(|m| m.to_uppercase()).collect())
            })
            .collect()
    }

    /// Every documented status of every operation.
    fn answers(&self) -> Answers {
        let mut all = Answers::new();
        for (path, methods) in self.methods() {
            for method in methods {
                let responses = self.operation(&path, &method)["responses"].as_object();
                for status in responses.unwrap().keys() {
                    all.insert((path.clone(), method.clone(), status.parse().unwrap()));
                }
            }
        }
        all
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        &self.0["paths"][path][method.to_lowercase()]
    }

    /// Follows a local `$ref` (`#/components/...`) to what it names.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(r) => self.resolve(self.0.pointer(r.trim_start_matches('#')).unwrap()),
            None => value,
        }
    }

    /// Asserts that `r`, the answer to `method path`, is one the document
    /// describes: a documented status, its required headers, every documented
    /// header's schema, and the body's schema. Returns what it checked.
    fn check(&self, method: &str, path: &str, r: &TestResponse) -> (String, String, u16) {
        let op = self.operation(path, method);
        let what = format!("{method} {path} -> {}: {}", r.status, r.body);
        let response = &op["responses"][r.status.to_string()];
        assert!(!response.is_null(), "undocumented status: {what}");
        let response = self.resolve(response);
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = self.resolve(header);
            let Some(value) = r.header(name) else {
                assert_ne!(header["required"], true, "{name} missing: {what}");
                continue;
            };
            let schema = &header["schema"];
            let value = match (schema["type"].as_str(), value.parse::<i64>()) {
                (Some("integer"), Ok(n)) => json!(n),
                _ => json!(value),
            };
            self.assert_valid(schema, &value, &format!("header {name}: {what}"));
        }
        let schema = &response["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "no JSON schema: {what}");
        self.assert_valid(schema, &r.body, &what);
        (path.to_owned(), method.to_owned(), r.status)
    }

    fn assert_valid(&self, schema: &Value, instance: &Value, what: &str) {
        // The schema beside the document's components, so that its `#/components/...` refs resolve.
        let root = json!({"components": self.0["components"], "allOf": [schema]});
        let validator = jsonschema::draft202012::new(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:?}");
    }
}

fn basic(api_key: &str) -> String {
    let pair = format!("{}:{api_key}", key_id(api_key));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A request and where it goes: method, path, headers, body.
struct Call {
    method: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn call(method: &str, path: &str, headers: &[(&'static str, &str)], body: &str) -> Call {
    Call {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body: body.to_owned(),
    }
}

fn post_json(path: &str, body: Value) -> Call {
    call("POST", path, &[JSON], &body.to_string())
}

fn post_form(path: &str, auth: Option<&str>, form: &str) -> Call {
    let mut headers = vec![FORM];
    headers.extend(auth.map(|a| ("authorization", a)));
    call("POST", path, &headers, form)
}

/// The documented path of a URI: without its query, and as its template
/// for a path with parameters.
fn path_of(uri: &str) -> &str {
    let path = uri.split('?').next().unwrap_or(uri);
    match Endpoint::of(path) {
        Some(e) => e.template(),
        None => path,
    }
}

/// A path to request for a documented one: its parameters filled in.
fn concrete(template: &str) -> String {
    template
        .replace("{key_id}", "0123456789abcdef")
        .replace("{session_id}", "s")
}

/// Sends each call to a handler serving `routes` and checks the answer against the document.
async fn run(spec: &Spec, t: &TestApp, routes: &[Route], calls: Vec<Call>) -> Answers {
    let mut seen = Answers::new();
    for c in calls {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let method = Method::from_bytes(c.method.as_bytes()).unwrap();
        let r = t
            .request_to(routes, method, &c.path, &headers, &c.body)
            .await;
        seen.insert(spec.check(&c.method, path_of(&c.path), &r));
    }
    seen
}

/// The paths openapi.yaml documents: every route's but the console's, whose
/// pages are HTML for a browser, not the JSON API the document describes
/// (shared/src/http/console.rs tests their answers and headers).
fn documented_routes() -> impl Iterator<Item = &'static &'static str> {
    Route::ALL
        .iter()
        .filter(|r| **r != Route::Console)
        .flat_map(|r| r.templates())
}

#[tokio::test]
async fn every_documented_path_is_a_route_and_every_route_is_documented() {
    let documented: BTreeSet<String> = Spec::load().methods().into_keys().collect();
    let routes: BTreeSet<String> = documented_routes().map(|p| (*p).to_owned()).collect();
    assert_eq!(documented, routes);
}

#[tokio::test]
async fn every_route_is_documented_with_exactly_the_methods_it_takes() {
    let spec = Spec::load();
    let methods = spec.methods();
    let t = TestApp::spawn().await;
    for path in documented_routes() {
        let documented = &methods[*path];
        for method in METHODS {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let r = t.request(m, &concrete(path), &[], "").await;
            assert_eq!(
                r.status == 405,
                !documented.contains(method),
                "{method} {path}: {:?}",
                r.body
            );
            if r.status == 405 {
                let allow: BTreeSet<String> = r
                    .header("allow")
                    .unwrap()
                    .split(", ")
                    .map(str::to_owned)
                    .collect();
                assert_eq!(&allow, documented, "Allow of {path}");
            }
        }
    }
}

/// Success and client errors of every operation, on a working service.
async fn client_answers(spec: &Spec) -> Answers {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let doomed = t.create_key("read").await;
    let token = t.token(&key, "s1").await;
    let doomed_token = t.token(&key, "s2").await;
    let auth = basic(&key);
    let bearer = format!("Bearer {token}");
    let id = key_id(&key).to_owned();
    let post = format!("grant_type=client_credentials&client_id={id}&client_secret={key}");
    let (login, verify, revoke) = ("/auth/login", "/auth/verify", "/auth/revoke");
    let (oauth_token, introspect, oauth_revoke) =
        ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke");
    let calls = vec![
        post_json(login, json!({"api_key": key, "session_id": "fresh"})),
        call(
            "POST",
            login,
            &[FORM],
            &format!("api_key={key}&session_id=form"),
        ),
        post_json(login, json!({"session_id": "default"})),
        post_json(login, json!({"api_key": key, "scope": "admin"})),
        post_json(login, json!({"api_key": "bauth_not-a-key"})),
        post_json(
            login,
            json!({"api_key": key, "session_id": "s1", "scope": "read"}),
        ),
        call("GET", verify, &[("authorization", &bearer)], ""),
        call(
            "GET",
            "/auth/verify?scope=read",
            &[("authorization", &bearer)],
            "",
        ),
        call(
            "GET",
            "/auth/verify?scope=",
            &[("authorization", &bearer)],
            "",
        ),
        call("GET", verify, &[("authorization", "Bearer garbage")], ""),
        call(
            "GET",
            "/auth/verify?scope=admin",
            &[("authorization", &bearer)],
            "",
        ),
        post_json(verify, json!({"token": token, "scope": "read"})),
        call(
            "POST",
            verify,
            &[JSON, ("authorization", &bearer)],
            &json!({"token": token}).to_string(),
        ),
        post_json(verify, json!({"token": "garbage"})),
        post_json(verify, json!({"token": token, "scope": "admin"})),
        post_json(revoke, json!({"api_key": key, "session_id": "unused"})),
        call(
            "POST",
            revoke,
            &[("authorization", &format!("Bearer {doomed_token}"))],
            "",
        ),
        post_json(revoke, json!({"api_key": doomed, "revoke_api_key": true})),
        post_json(revoke, json!({})),
        post_json(
            revoke,
            json!({"api_key": "bauth_not-a-key", "all_sessions": true}),
        ),
        post_form(
            oauth_token,
            Some(&auth),
            "grant_type=client_credentials&scope=read&session_id=o1",
        ),
        post_form(oauth_token, None, &post),
        post_form(oauth_token, Some(&auth), "grant_type=password"),
        post_form(
            oauth_token,
            Some(&auth),
            "grant_type=client_credentials&scope=admin",
        ),
        post_form(oauth_token, Some(&auth), "scope=read"),
        post_form(
            oauth_token,
            Some(&basic(&doomed)),
            "grant_type=client_credentials",
        ),
        post_form(introspect, Some(&auth), &format!("token={token}")),
        post_form(introspect, Some(&auth), "token=garbage"),
        post_form(introspect, Some(&auth), ""),
        post_form(introspect, None, &format!("token={token}")),
        post_form(
            oauth_revoke,
            Some(&auth),
            "token=garbage&token_type_hint=access_token",
        ),
        post_form(oauth_revoke, Some(&auth), ""),
        post_form(oauth_revoke, None, "token=garbage"),
        call("GET", "/.well-known/oauth-authorization-server", &[], ""),
    ];
    let mut seen = run(spec, &t, Route::ALL, calls).await;
    seen.extend(admin_answers(spec, &t).await);

    // What every operation answers alike: a method the route does not take,
    // a function that does not serve it, a body too large or of another type.
    let big = json!({"pad": "x".repeat(16 * 1024)}).to_string();
    for (path, methods) in spec.methods() {
        let r = t.request(Method::PUT, &concrete(&path), &[], "").await;
        for method in &methods {
            seen.insert(spec.check(method, &path, &r));
        }
        let path = concrete(&path);
        for method in &methods {
            seen.extend(run(spec, &t, &[], vec![call(method, &path, &[], "")]).await);
            if method == "POST" {
                let calls = vec![
                    call("POST", &path, &[JSON], &big),
                    call("POST", &path, &[("content-type", "text/plain")], "x"),
                ];
                seen.extend(run(spec, &t, Route::ALL, calls).await);
            }
        }
    }
    seen
}

/// Success and client errors of every management operation, with root keys.
async fn admin_answers(spec: &Spec, t: &TestApp) -> Answers {
    let root = t
        .create_key("admin:keys:read admin:keys:write admin:audit:read")
        .await;
    let bearer = format!("Bearer {}", t.token(&root, "admin").await);
    let reader = t.create_key("admin:keys:read").await;
    let reader = format!("Bearer {}", t.token(&reader, "admin").await);
    let writer = t.create_key("admin:keys:write").await;
    let writer = format!("Bearer {}", t.token(&writer, "admin").await);
    let auth = |token: &str| ("authorization", token.to_owned());
    let as_root = |method: &str, path: &str, body: Option<Value>| {
        let mut c = call(method, path, &[], "");
        c.headers.push(auth(&bearer));
        if let Some(body) = body {
            c.headers
                .push(("content-type", "application/json".to_owned()));
            c.body = body.to_string();
        }
        c
    };
    let made = t
        .request(
            Method::POST,
            "/admin/v1/keys",
            &[("authorization", &bearer), JSON],
            &json!({"name": "k", "scopes": "read"}).to_string(),
        )
        .await;
    let id = made.body["key"]["key_id"].as_str().unwrap().to_owned();
    let revoked = t.create_key("read").await;
    let revoked = key_id(&revoked).to_owned();
    let key = |rest: &str| format!("/admin/v1/keys/{id}{rest}");
    let gone = |rest: &str| format!("/admin/v1/keys/{revoked}{rest}");
    let unknown = |rest: &str| format!("/admin/v1/keys/0123456789abcdef{rest}");
    let big = json!({"pad": "x".repeat(16 * 1024)}).to_string();
    let mut calls = vec![as_root("POST", &gone("/revoke"), None)];
    for (method, path, body) in [
        (
            "POST",
            "/admin/v1/keys".to_owned(),
            Some(
                json!({"name": "k", "scopes": "read", "owner": "acme", "meta": {"a": 1}, "expires_in": 60}),
            ),
        ),
        (
            "POST",
            "/admin/v1/keys".to_owned(),
            Some(json!({"scopes": "read"})),
        ),
        (
            "POST",
            "/admin/v1/keys".to_owned(),
            Some(json!({"name": "k", "scopes": "admin:portal"})),
        ),
        ("GET", "/admin/v1/keys?limit=1".to_owned(), None),
        ("GET", "/admin/v1/keys?limit=0".to_owned(), None),
        ("GET", key(""), None),
        ("GET", key("?a=1&a=2"), None),
        ("GET", unknown(""), None),
        (
            "PATCH",
            key(""),
            Some(json!({"name": "renamed", "meta": null})),
        ),
        ("PATCH", key(""), Some(json!({"name": null}))),
        ("PATCH", unknown(""), Some(json!({}))),
        ("PATCH", gone(""), Some(json!({"name": "x"}))),
        ("POST", key("/rotate"), Some(json!({"grace_seconds": 60}))),
        ("POST", key("/rotate"), Some(json!({"grace_seconds": -1}))),
        ("POST", unknown("/rotate"), None),
        ("POST", gone("/rotate"), None),
        ("GET", key("/sessions"), None),
        ("GET", key("/sessions?cursor=x"), None),
        ("GET", unknown("/sessions"), None),
        ("POST", key("/sessions/s/revoke"), None),
        ("POST", key("/sessions/s/revoke"), Some(json!({"x": 1}))),
        ("POST", unknown("/sessions/s/revoke"), None),
        ("POST", key("/sessions/revoke"), None),
        ("POST", key("/sessions/revoke"), Some(json!({"x": 1}))),
        ("POST", unknown("/sessions/revoke"), None),
        ("GET", format!("/admin/v1/events?key_id={id}"), None),
        ("GET", "/admin/v1/events".to_owned(), None),
        ("GET", "/admin/v1/events?owner=a%20b".to_owned(), None),
        (
            "GET",
            "/admin/v1/events?key_id=0123456789abcdef".to_owned(),
            None,
        ),
        ("POST", key("/revoke"), Some(json!({"x": 1}))),
        ("POST", unknown("/revoke"), None),
        ("POST", key("/revoke"), None),
    ] {
        calls.push(as_root(method, &path, body));
    }
    for (method, path) in [
        ("GET", "/admin/v1/keys".to_owned()),
        ("POST", "/admin/v1/keys".to_owned()),
        ("GET", key("")),
        ("PATCH", key("")),
        ("POST", key("/rotate")),
        ("POST", key("/revoke")),
        ("GET", key("/sessions")),
        ("POST", key("/sessions/revoke")),
        ("POST", key("/sessions/s/revoke")),
        ("GET", format!("/admin/v1/events?key_id={id}")),
    ] {
        let reader_call = Call {
            headers: vec![auth(if method == "GET" { &writer } else { &reader })],
            ..call(method, &path, &[], "")
        };
        let garbage = Call {
            headers: vec![auth("Bearer garbage")],
            ..call(method, &path, &[], "")
        };
        calls.extend([reader_call, garbage]);
        if method != "GET" {
            let mut too_big = as_root(method, &path, None);
            too_big
                .headers
                .push(("content-type", "application/json".to_owned()));
            too_big.body = big.clone();
            let mut text = as_root(method, &path, None);
            text.headers.push(("content-type", "text/plain".to_owned()));
            text.body = "x".into();
            calls.extend([too_big, text]);
        }
    }
    run(spec, t, Route::ALL, calls).await
}

/// The customer portal's answers: links made and refused, codes traded and
/// refused, and a portal customer at its key cap.
async fn portal_answers(spec: &Spec) -> Answers {
    let mut t = TestApp::spawn().await;
    t.app.admin.portal_return_origins = vec!["https://app.example.com".into()];
    t.app.admin.portal_max_keys = 1;
    let linker = t.create_key("admin:portal").await;
    let linker = format!("Bearer {}", t.token(&linker, "admin").await);
    let reader = t.create_key("admin:keys:read").await;
    let reader = format!("Bearer {}", t.token(&reader, "admin").await);
    let links = "/admin/v1/portal-sessions";
    let link = |auth: &str, body: Value| {
        call(
            "POST",
            links,
            &[("authorization", auth), JSON],
            &body.to_string(),
        )
    };
    let made = t
        .request(
            Method::POST,
            links,
            &[("authorization", &linker), JSON],
            &json!({"owner": "acme", "allowed_scopes": "read"}).to_string(),
        )
        .await;
    let code = made.body["url"]
        .as_str()
        .unwrap()
        .rsplit_once("#code=")
        .unwrap()
        .1;
    let exchange = "/admin/v1/portal-sessions/exchange";
    let portal = t
        .request(
            Method::POST,
            exchange,
            &[JSON],
            &json!({"code": code}).to_string(),
        )
        .await
        .token();
    let portal = format!("Bearer {portal}");
    let spare = t
        .request(
            Method::POST,
            links,
            &[("authorization", &linker), JSON],
            &json!({"owner": "globex", "allowed_scopes": "read"}).to_string(),
        )
        .await;
    let spare = spare.body["url"]
        .as_str()
        .unwrap()
        .rsplit_once("#code=")
        .unwrap()
        .1;
    let new_key = json!({"name": "k", "scopes": "read"}).to_string();
    let mut calls = vec![
        link(
            &linker,
            json!({"owner": "acme", "allowed_scopes": "read", "return_url": "https://app.example.com/x"}),
        ),
        link(
            &linker,
            json!({"owner": "acme", "allowed_scopes": "admin:keys:read"}),
        ),
        link(
            &linker,
            json!({"owner": "acme", "allowed_scopes": "read", "return_url": "https://evil.example/"}),
        ),
        link(&reader, json!({"owner": "acme", "allowed_scopes": "read"})),
        link(
            "Bearer garbage",
            json!({"owner": "acme", "allowed_scopes": "read"}),
        ),
        post_json(exchange, json!({"code": spare})),
        post_json(exchange, json!({"code": code})),
        post_json(exchange, json!({"code": 1})),
        call(
            "POST",
            "/admin/v1/keys",
            &[("authorization", &portal), JSON],
            &new_key,
        ),
        call(
            "POST",
            "/admin/v1/keys",
            &[("authorization", &portal), JSON],
            &new_key,
        ),
    ];
    for content_type in ["application/json", "text/plain"] {
        let body = if content_type == "text/plain" {
            "x".to_owned()
        } else {
            json!({"pad": "x".repeat(16 * 1024)}).to_string()
        };
        calls.push(call(
            "POST",
            links,
            &[("authorization", &linker), ("content-type", content_type)],
            &body,
        ));
    }
    run(spec, &t, Route::ALL, calls).await
}

/// Every management operation with a root key's token, for the backend failures.
fn admin_backend_calls(bearer: &str) -> Vec<Call> {
    let key = |rest: &str| format!("/admin/v1/keys/0123456789abcdef{rest}");
    [
        ("GET", "/admin/v1/keys".to_owned()),
        ("POST", "/admin/v1/keys".to_owned()),
        ("GET", key("")),
        ("PATCH", key("")),
        ("POST", key("/rotate")),
        ("POST", key("/revoke")),
        ("GET", key("/sessions")),
        ("POST", key("/sessions/revoke")),
        ("POST", key("/sessions/s/revoke")),
        ("GET", "/admin/v1/events?key_id=0123456789abcdef".to_owned()),
        ("POST", "/admin/v1/portal-sessions".to_owned()),
    ]
    .into_iter()
    .map(|(method, path)| call(method, &path, &[("authorization", bearer)], ""))
    .chain([post_json(
        "/admin/v1/portal-sessions/exchange",
        json!({"code": "A".repeat(43)}),
    )])
    .collect()
}

/// 500 from every operation that reads a key: its item in the table is corrupt.
async fn server_errors(spec: &Spec) -> Answers {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    t.corrupt_key_item(&key).await;
    run(spec, &t, Route::ALL, backend_calls(&key, &token)).await
}

/// 503 from every operation that reads state: the store is DynamoDB, and
/// unreachable (a real client on a port that refuses connections: no
/// emulator needed to be down).
async fn outages(spec: &Spec) -> Answers {
    let mut t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    let dead = dead_endpoint().await;
    t.app.store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&dead),
        "auth",
    ));
    run(spec, &t, Route::ALL, backend_calls(&key, &token)).await
}

/// 429 from the operations that open sessions: the key holds its one session.
async fn capped(spec: &Spec) -> Answers {
    let t = TestApp::spawn_with(TokenPolicy {
        max_sessions_per_key: 1,
        ..TokenPolicy::with_issuer(auth_tests::ISSUER)
    })
    .await;
    let key = t.create_key("read").await;
    t.token(&key, "only").await;
    let calls = vec![
        post_json("/auth/login", json!({"api_key": key, "session_id": "more"})),
        post_form(
            "/oauth2/token",
            Some(&basic(&key)),
            "grant_type=client_credentials&session_id=more",
        ),
    ];
    run(spec, &t, Route::ALL, calls).await
}

/// One call per operation that needs the key's state, with good credentials.
fn backend_calls(key: &str, token: &str) -> Vec<Call> {
    let auth = basic(key);
    let bearer = format!("Bearer {token}");
    let mut calls = admin_backend_calls(&bearer);
    calls.extend([
        post_json("/auth/login", json!({"api_key": key, "session_id": "new"})),
        call("GET", "/auth/verify", &[("authorization", &bearer)], ""),
        post_json("/auth/verify", json!({"token": token})),
        post_json(
            "/auth/revoke",
            json!({"api_key": key, "all_sessions": true}),
        ),
        post_form(
            "/oauth2/token",
            Some(&auth),
            "grant_type=client_credentials",
        ),
        post_form("/oauth2/introspect", Some(&auth), &format!("token={token}")),
        post_form("/oauth2/revoke", Some(&auth), &format!("token={token}")),
    ]);
    calls
}

#[tokio::test]
async fn every_documented_answer_is_one_the_handler_really_gives() {
    let spec = Spec::load();
    let (clients, bugs, down, full, portal) = tokio::join!(
        client_answers(&spec),
        server_errors(&spec),
        outages(&spec),
        capped(&spec),
        portal_answers(&spec)
    );
    let seen: Answers = clients
        .into_iter()
        .chain(portal)
        .chain(bugs)
        .chain(down)
        .chain(full)
        .collect();
    let unseen: Vec<_> = spec.answers().difference(&seen).cloned().collect();
    assert!(
        unseen.is_empty(),
        "documented but never exercised: {unseen:?}"
    );
}
