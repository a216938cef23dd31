//! The management API (`/admin/v1/*`) as a provider's backend uses it: a
//! root key logs in and manages keys with its bearer token.

use std::collections::BTreeSet;

use auth_shared::config::TokenPolicy;
use auth_tests::{ISSUER, TestApp, TestResponse};
use lambda_http::http::Method;
use serde_json::{Value, json};

use auth_tests::expect::key_id;

pub(crate) const ALL_ADMIN: &str = "admin:keys:read admin:keys:write admin:audit:read";

/// A root key holding `scopes` (of `owner`, when given) and a token of it.
pub(crate) async fn root(t: &TestApp, scopes: &str, owner: Option<&str>) -> (String, String) {
    let key = match owner {
        Some(owner) => t.create_owned_key(scopes, owner, json!({})).await,
        None => t.create_key(scopes).await,
    };
    let token = t.token(&key, "admin").await;
    (key, token)
}

pub(crate) async fn call(
    t: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    if !text.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    t.request(method, path, &headers, &text).await
}

async fn get(t: &TestApp, token: &str, path: &str) -> TestResponse {
    call(t, token, Method::GET, path, None).await
}

async fn post(t: &TestApp, token: &str, path: &str, body: Value) -> TestResponse {
    call(t, token, Method::POST, path, Some(body)).await
}

async fn create(t: &TestApp, token: &str, body: Value) -> TestResponse {
    post(t, token, "/admin/v1/keys", body).await
}

/// Creates a key through the API; its id and its secret.
pub(crate) async fn made(t: &TestApp, token: &str, body: Value) -> (String, String) {
    let r = create(t, token, body).await;
    assert_eq!(r.status, 201, "{r:?}");
    (
        r.body["key"]["key_id"].as_str().unwrap().to_owned(),
        r.body["api_key"].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn key_path(id: &str, rest: &str) -> String {
    format!("/admin/v1/keys/{id}{rest}")
}

#[tokio::test]
async fn a_root_key_creates_a_key_that_logs_in_and_verifies_with_its_owner_and_meta() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (root_key, token) = root(&t, ALL_ADMIN, None).await;
    let r = create(
        &t,
        &token,
        json!({"name": "acme ci", "scopes": "write read", "owner": "acme", "meta": {"plan": "pro"}, "expires_in": 3600}),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let view = &r.body["key"];
    let id = view["key_id"].as_str().unwrap();
    assert_eq!(r.header("location"), Some(key_path(id, "").as_str()));
    let api_key = r.body["api_key"].as_str().unwrap();
    assert_eq!(key_id(api_key), id);
    assert_eq!(view["scopes"], "read write");
    assert_eq!(view["status"], "active");
    assert_eq!(view["owner"], "acme");
    assert_eq!(view["meta"], json!({"plan": "pro"}));
    assert_eq!(view["last_used_at"], Value::Null);
    assert_eq!(view["previous_secret_valid_until"], Value::Null);
    assert_eq!(
        view["created_by"],
        json!({"kind": "key", "id": key_id(&root_key), "owner": null})
    );
    let created_at = view["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 20,
        "{created_at}"
    );
    let fields: BTreeSet<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "key_id",
            "name",
            "owner",
            "scopes",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "meta",
            "previous_secret_valid_until",
            "created_by"
        ])
    );

    let verified = t.verify(&t.token(api_key, "s").await, None).await;
    assert_eq!(verified.status, 200);
    assert_eq!(verified.body["owner"], "acme");
    assert_eq!(verified.body["meta"], json!({"plan": "pro"}));

    let shown = get(&t, &token, &key_path(id, "")).await;
    assert_eq!(shown.status, 200);
    let mut used = view.clone();
    used["last_used_at"] = view["created_at"].clone();
    assert_eq!(shown.body, used, "as created, and used by that login");
    assert!(
        !shown.body.to_string().contains(api_key),
        "never the secret"
    );
}

#[tokio::test]
async fn every_admin_route_without_a_token_or_with_a_bad_one_is_401_invalid_token() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let id = "0123456789abcdef";
    let routes = [
        (Method::GET, "/admin/v1/keys".to_owned()),
        (Method::POST, "/admin/v1/keys".to_owned()),
        (Method::GET, key_path(id, "")),
        (Method::PATCH, key_path(id, "")),
        (Method::POST, key_path(id, "/rotate")),
        (Method::POST, key_path(id, "/revoke")),
        (Method::GET, key_path(id, "/sessions")),
        (Method::POST, key_path(id, "/sessions/revoke")),
        (Method::POST, key_path(id, "/sessions/s/revoke")),
        (
            Method::GET,
            "/admin/v1/events?key_id=0123456789abcdef".to_owned(),
        ),
    ];
    for (method, path) in routes {
        let none = t.request(method.clone(), &path, &[], "").await;
        let bad = call(&t, "garbage", method.clone(), &path, None).await;
        for r in [none, bad] {
            assert_eq!(
                (r.status, r.error()),
                (401, "invalid_token"),
                "{method} {path}"
            );
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer error=\"invalid_token\"")
            );
        }
    }
}

#[tokio::test]
async fn a_revoked_root_key_is_stopped_at_its_next_request() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (_, other) = root(&t, ALL_ADMIN, None).await;
    let me = t.verify(&token, None).await.body["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post(&t, &other, &key_path(&me, "/revoke"), json!({}))
            .await
            .status,
        200
    );
    let r = get(&t, &token, "/admin/v1/keys").await;
    assert_eq!((r.status, r.error()), (401, "invalid_token"));
}

#[tokio::test]
async fn each_route_needs_its_admin_scope_and_a_token_short_of_it_is_403_naming_it() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, reader) = root(&t, "admin:keys:read", None).await;
    let (_, writer) = root(&t, "admin:keys:write", None).await;
    let (_, plain) = root(&t, "read", None).await;
    let (id, _) = made(&t, &writer, json!({"name": "k", "scopes": "read"})).await;
    let cases = [
        (
            &reader,
            Method::POST,
            "/admin/v1/keys".to_owned(),
            "admin:keys:write",
        ),
        (
            &reader,
            Method::PATCH,
            key_path(&id, ""),
            "admin:keys:write",
        ),
        (
            &reader,
            Method::POST,
            key_path(&id, "/rotate"),
            "admin:keys:write",
        ),
        (
            &reader,
            Method::POST,
            key_path(&id, "/revoke"),
            "admin:keys:write",
        ),
        (
            &reader,
            Method::POST,
            key_path(&id, "/sessions/revoke"),
            "admin:keys:write",
        ),
        (
            &reader,
            Method::POST,
            key_path(&id, "/sessions/s/revoke"),
            "admin:keys:write",
        ),
        (
            &writer,
            Method::GET,
            "/admin/v1/keys".to_owned(),
            "admin:keys:read",
        ),
        (&writer, Method::GET, key_path(&id, ""), "admin:keys:read"),
        (
            &writer,
            Method::GET,
            key_path(&id, "/sessions"),
            "admin:keys:read",
        ),
        (
            &reader,
            Method::GET,
            format!("/admin/v1/events?key_id={id}"),
            "admin:audit:read",
        ),
        (
            &plain,
            Method::GET,
            "/admin/v1/keys".to_owned(),
            "admin:keys:read",
        ),
    ];
    for (token, method, path, scope) in cases {
        let r = call(&t, token, method.clone(), &path, Some(json!({"name": "x"}))).await;
        assert_eq!(
            (r.status, r.error()),
            (403, "insufficient_scope"),
            "{method} {path}"
        );
        let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
        assert_eq!(r.header("www-authenticate"), Some(challenge.as_str()));
    }
    assert_eq!(get(&t, &reader, &key_path(&id, "")).await.status, 200);
}

#[tokio::test]
async fn an_owner_bound_root_key_manages_only_its_owners_keys_and_others_are_404() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, unbound) = root(&t, ALL_ADMIN, None).await;
    let (_, acme) = root(&t, ALL_ADMIN, Some("acme")).await;
    let (theirs, _) = made(
        &t,
        &unbound,
        json!({"name": "t", "scopes": "read", "owner": "globex"}),
    )
    .await;

    let r = create(&t, &acme, json!({"name": "mine", "scopes": "read"})).await;
    assert_eq!(
        (r.status, &r.body["key"]["owner"]),
        (201, &json!("acme")),
        "{r:?}"
    );
    let mine = r.body["key"]["key_id"].as_str().unwrap().to_owned();
    let r = create(
        &t,
        &acme,
        json!({"name": "x", "scopes": "read", "owner": "globex"}),
    )
    .await;
    assert_eq!((r.status, r.error()), (403, "owner_mismatch"));

    for (method, rest, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"name": "taken"}))),
        (Method::POST, "/rotate", Some(json!({}))),
        (Method::POST, "/revoke", Some(json!({}))),
        (Method::GET, "/sessions", None),
        (Method::POST, "/sessions/revoke", Some(json!({}))),
        (Method::POST, "/sessions/default/revoke", Some(json!({}))),
    ] {
        let r = call(&t, &acme, method.clone(), &key_path(&theirs, rest), body).await;
        assert_eq!((r.status, r.error()), (404, "not_found"), "{method} {rest}");
    }
    let r = get(&t, &acme, &format!("/admin/v1/events?key_id={theirs}")).await;
    assert_eq!(r.status, 404);

    let listed = get(&t, &acme, "/admin/v1/keys").await;
    let ids: Vec<&str> = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&mine.as_str()) && !ids.contains(&theirs.as_str()),
        "{ids:?}"
    );
    assert!(
        listed.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["owner"] == "acme")
    );
    let other = get(&t, &acme, "/admin/v1/keys?owner=globex").await;
    assert_eq!((other.status, &other.body["keys"]), (200, &json!([])));
    let all = get(&t, &unbound, "/admin/v1/keys?owner=globex").await;
    assert_eq!(all.body["keys"][0]["key_id"], theirs.as_str());
}

#[tokio::test]
async fn a_malformed_owner_meta_over_4_kib_bad_limit_or_tampered_cursor_is_400() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    for body in [
        json!({"name": "k", "scopes": "read", "owner": "a b"}),
        json!({"name": "k", "scopes": "read", "meta": {"a": "x".repeat(4096)}}),
        json!({"name": "k", "scopes": "read", "meta": [1]}),
        json!({"name": "k", "scopes": "read", "expires_at": "2020-01-01T00:00:00Z"}),
        json!({"name": "k", "scopes": "read", "secret": "mine"}),
        json!({"scopes": "read"}),
    ] {
        let r = create(&t, &token, body.clone()).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{body}");
    }
    for _ in 0..3 {
        made(&t, &token, json!({"name": "k", "scopes": "read"})).await;
    }
    let page = get(&t, &token, "/admin/v1/keys?limit=1").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let edited = format!("x{cursor}");
    for query in [
        "owner=a%20b".to_owned(),
        "limit=0".to_owned(),
        "limit=101".to_owned(),
        "limit=ten".to_owned(),
        "status=gone".to_owned(),
        format!("cursor={edited}"),
        format!("cursor={cursor}&status=active"),
    ] {
        let r = get(&t, &token, &format!("/admin/v1/keys?{query}")).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{query}");
    }
    let r = get(
        &t,
        &token,
        &format!("/admin/v1/keys?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(r.status, 200, "the cursor as given still works");
}

#[tokio::test]
async fn listing_pages_through_every_key_newest_first_with_no_duplicates_or_gaps_while_keys_are_made()
 {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (root_key, token) = root(&t, ALL_ADMIN, None).await;
    let mut ids = vec![key_id(&root_key).to_owned()];
    for i in 0..7 {
        if i % 2 == 0 {
            t.clock.advance(1);
        }
        ids.push(
            made(
                &t,
                &token,
                json!({"name": format!("k{i}"), "scopes": "read"}),
            )
            .await
            .0,
        );
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut path = "/admin/v1/keys?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let r = get(&t, &token, &path).await;
        assert_eq!(r.status, 200, "{r:?}");
        let keys = r.body["keys"].as_array().unwrap();
        assert!(keys.len() <= 3);
        seen.extend(keys.iter().map(|k| {
            (
                k["created_at"].as_str().unwrap().to_owned(),
                k["key_id"].as_str().unwrap().to_owned(),
            )
        }));
        pages += 1;
        // Keys made while the listing pages on are newer than its cursor:
        // they shift nothing, so no page repeats or skips a key.
        t.clock.advance(1);
        made(
            &t,
            &token,
            json!({"name": format!("late{pages}"), "scopes": "read"}),
        )
        .await;
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/v1/keys?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first);
    assert_eq!(seen.len(), ids.len(), "no key twice");
    let listed: BTreeSet<String> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        listed,
        ids.into_iter().collect(),
        "every key there when the listing began, once"
    );
}

#[tokio::test]
async fn the_status_filter_lists_active_revoked_and_expired_keys() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, Some("acme")).await;
    let (active, _) = made(&t, &token, json!({"name": "a", "scopes": "read"})).await;
    let (revoked, _) = made(&t, &token, json!({"name": "r", "scopes": "read"})).await;
    let (expired, _) = made(
        &t,
        &token,
        json!({"name": "e", "scopes": "read", "expires_in": 60}),
    )
    .await;
    post(&t, &token, &key_path(&revoked, "/revoke"), json!({})).await;
    t.clock.advance(60);
    for (status, id) in [("revoked", &revoked), ("expired", &expired)] {
        let r = get(
            &t,
            &token,
            &format!("/admin/v1/keys?status={status}&limit=1"),
        )
        .await;
        assert_eq!(
            r.body["keys"].as_array().unwrap().len(),
            1,
            "{status}: {r:?}"
        );
        assert_eq!(
            (&r.body["keys"][0]["key_id"], &r.body["keys"][0]["status"]),
            (&json!(id), &json!(status))
        );
        assert_eq!(r.body["next_cursor"], Value::Null);
    }
    let r = get(&t, &token, "/admin/v1/keys?status=active").await;
    let ids: Vec<&Value> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["key_id"])
        .collect();
    assert!(
        ids.contains(&&json!(active)) && ids.len() == 2,
        "the root key and one: {ids:?}"
    );
}

#[tokio::test]
async fn a_merge_patch_replaces_name_scopes_meta_and_expiry_and_null_clears() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, _) = made(
        &t,
        &token,
        json!({"name": "k", "scopes": "read", "meta": {"a": 1, "b": 2}, "expires_in": 600}),
    )
    .await;
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/merge-patch+json"),
    ];
    let patch = json!({"name": "renamed", "scopes": "read write", "meta": {"c": 3}, "expires_at": "2099-01-01T00:00:00Z"});
    let r = t
        .request(
            Method::PATCH,
            &key_path(&id, ""),
            &headers,
            &patch.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["name"], &r.body["scopes"]),
        (&json!("renamed"), &json!("read write"))
    );
    assert_eq!(r.body["meta"], json!({"c": 3}), "meta is replaced whole");
    assert_eq!(r.body["expires_at"], "2099-01-01T00:00:00Z");
    let r = call(
        &t,
        &token,
        Method::PATCH,
        &key_path(&id, ""),
        Some(json!({"meta": null, "expires_at": null})),
    )
    .await;
    assert_eq!(
        (&r.body["meta"], &r.body["expires_at"], &r.body["name"]),
        (&Value::Null, &Value::Null, &json!("renamed"))
    );
    for bad in [
        json!({"name": null}),
        json!({"scopes": null}),
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
        json!({"owner": "x"}),
    ] {
        let r = call(
            &t,
            &token,
            Method::PATCH,
            &key_path(&id, ""),
            Some(bad.clone()),
        )
        .await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{bad}");
    }
    let form = t
        .request(
            Method::PATCH,
            &key_path(&id, ""),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "name=x",
        )
        .await;
    assert_eq!(form.status, 415);
}

#[tokio::test]
async fn narrowing_a_keys_scopes_ends_its_wider_tokens_at_the_next_verify() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, api_key) = made(&t, &token, json!({"name": "k", "scopes": "read write"})).await;
    let wide = t.token(&api_key, "wide").await;
    let narrow = t
        .login(json!({"api_key": api_key, "session_id": "narrow", "scope": "read"}))
        .await
        .token();
    let r = call(
        &t,
        &token,
        Method::PATCH,
        &key_path(&id, ""),
        Some(json!({"scopes": "read"})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(t.verify(&wide, None).await.status, 401);
    assert_eq!(t.verify(&narrow, None).await.status, 200);
}

#[tokio::test]
async fn a_rotation_gives_a_new_secret_and_the_old_one_works_for_the_grace_period_only() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, old) = made(&t, &token, json!({"name": "k", "scopes": "read"})).await;
    let r = post(
        &t,
        &token,
        &key_path(&id, "/rotate"),
        json!({"grace_seconds": 60}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.body["previous_secret_valid_until"].is_string());
    assert_eq!(
        r.body["key"]["previous_secret_valid_until"],
        r.body["previous_secret_valid_until"]
    );
    assert_eq!(
        t.login(json!({"api_key": old, "session_id": "a"}))
            .await
            .status,
        200
    );
    t.clock.advance(60);
    assert_eq!(
        t.login(json!({"api_key": old, "session_id": "b"}))
            .await
            .status,
        401
    );
    assert_eq!(
        t.login(json!({"api_key": new, "session_id": "c"}))
            .await
            .status,
        200
    );

    let r = post(
        &t,
        &token,
        &key_path(&id, "/rotate"),
        json!({"grace_seconds": 0}),
    )
    .await;
    assert_eq!(r.body["previous_secret_valid_until"], Value::Null);
    assert_eq!(
        t.login(json!({"api_key": new, "session_id": "d"}))
            .await
            .status,
        401,
        "at once"
    );
    let r = call(&t, &token, Method::POST, &key_path(&id, "/rotate"), None).await;
    assert!(
        r.body["previous_secret_valid_until"].is_string(),
        "a day by default: {r:?}"
    );
}

#[tokio::test]
async fn a_revoked_key_is_409_key_revoked_to_patch_or_rotate_and_revoking_again_changes_nothing() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, api_key) = made(&t, &token, json!({"name": "k", "scopes": "read"})).await;
    let live = t.token(&api_key, "s").await;
    let r = post(&t, &token, &key_path(&id, "/revoke"), json!({})).await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("revoked")));
    assert_eq!(t.verify(&live, None).await.status, 401);
    let again = call(&t, &token, Method::POST, &key_path(&id, "/revoke"), None).await;
    assert_eq!((again.status, &again.body), (200, &r.body));
    for (method, rest) in [(Method::PATCH, ""), (Method::POST, "/rotate")] {
        let r = call(&t, &token, method, &key_path(&id, rest), Some(json!({}))).await;
        assert_eq!((r.status, r.error()), (409, "key_revoked"), "{rest}");
    }
    let events = get(&t, &token, &format!("/admin/v1/events?key_id={id}")).await;
    let revokes = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "key.revoked")
        .count();
    assert_eq!(revokes, 1, "a second revoke writes no event");
}

#[tokio::test]
async fn a_caller_cannot_grant_or_touch_an_admin_scope_its_token_lacks() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, writer) = root(&t, "admin:keys:read admin:keys:write", None).await;
    let (_, full) = root(&t, ALL_ADMIN, None).await;
    let r = create(
        &t,
        &writer,
        json!({"name": "k", "scopes": "read admin:audit:read"}),
    )
    .await;
    assert_eq!((r.status, r.error()), (403, "insufficient_scope"));
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("admin:audit:read")
    );
    let (plain, _) = made(
        &t,
        &writer,
        json!({"name": "k", "scopes": "read admin:keys:read"}),
    )
    .await;
    let r = call(
        &t,
        &writer,
        Method::PATCH,
        &key_path(&plain, ""),
        Some(json!({"scopes": "admin:audit:read"})),
    )
    .await;
    assert_eq!((r.status, r.error()), (403, "insufficient_scope"));
    let (auditor, _) = made(
        &t,
        &full,
        json!({"name": "a", "scopes": "admin:audit:read"}),
    )
    .await;
    for (method, rest) in [
        (Method::POST, "/rotate"),
        (Method::POST, "/revoke"),
        (Method::PATCH, ""),
    ] {
        let r = call(
            &t,
            &writer,
            method,
            &key_path(&auditor, rest),
            Some(json!({})),
        )
        .await;
        assert_eq!((r.status, r.error()), (403, "insufficient_scope"), "{rest}");
    }
    let shown = get(&t, &writer, &key_path(&auditor, "")).await;
    assert_eq!(shown.body["status"], "active", "nothing changed");
    assert_eq!(
        post(&t, &full, &key_path(&auditor, "/revoke"), json!({}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn sessions_are_listed_live_and_newest_first_and_revoked_one_or_all_at_once() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, api_key) = made(&t, &token, json!({"name": "k", "scopes": "read"})).await;
    let mut tokens = Vec::new();
    for s in ["a", "b", "c"] {
        t.clock.advance_ms(5);
        tokens.push(t.token(&api_key, s).await);
    }
    let r = get(&t, &token, &key_path(&id, "/sessions?limit=2")).await;
    let names = |r: &TestResponse| -> Vec<String> {
        r.body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&r), ["c", "b"]);
    assert!(
        r.body["sessions"][0]["expires_at"].is_string() && r.body["sessions"][0]["scope"] == "read"
    );
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let rest = get(
        &t,
        &token,
        &key_path(&id, &format!("/sessions?limit=2&cursor={cursor}")),
    )
    .await;
    assert_eq!(
        (names(&rest), &rest.body["next_cursor"]),
        (vec!["a".to_owned()], &Value::Null)
    );

    let r = post(&t, &token, &key_path(&id, "/sessions/b/revoke"), json!({})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"revoked": true})));
    assert_eq!(t.verify(&tokens[1], None).await.status, 401);
    let r = post(&t, &token, &key_path(&id, "/sessions/b/revoke"), json!({})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"revoked": false})));
    let r = post(
        &t,
        &token,
        &key_path(&id, "/sessions/not%20valid/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 400);

    let r = post(&t, &token, &key_path(&id, "/sessions/revoke"), json!({})).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"revoked": true, "sessions_revoked": 2}))
    );
    for live in [&tokens[0], &tokens[2]] {
        assert_eq!(t.verify(live, None).await.status, 401);
    }
    assert_eq!(
        get(&t, &token, &key_path(&id, "/sessions")).await.body["sessions"],
        json!([])
    );
    let fresh = t.token(&api_key, "after").await;
    assert_eq!(
        t.verify(&fresh, None).await.status,
        200,
        "a login after the cutoff verifies"
    );
}

#[tokio::test]
async fn every_change_writes_one_event_naming_the_root_key_and_its_request() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let (root_key, token) = root(&t, ALL_ADMIN, None).await;
    let (id, _) = made(
        &t,
        &token,
        json!({"name": "k", "scopes": "read", "meta": {"plan": "pro"}}),
    )
    .await;
    call(
        &t,
        &token,
        Method::PATCH,
        &key_path(&id, ""),
        Some(json!({"name": "n"})),
    )
    .await;
    post(
        &t,
        &token,
        &key_path(&id, "/rotate"),
        json!({"grace_seconds": 0}),
    )
    .await;
    post(&t, &token, &key_path(&id, "/sessions/revoke"), json!({})).await;
    post(&t, &token, &key_path(&id, "/revoke"), json!({})).await;
    let r = get(&t, &token, &format!("/admin/v1/events?key_id={id}&limit=3")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let rest = get(
        &t,
        &token,
        &format!("/admin/v1/events?key_id={id}&limit=3&cursor={cursor}"),
    )
    .await;
    let events: Vec<&Value> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.body["events"].as_array().unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "key.revoked",
            "sessions.revoked",
            "key.rotated",
            "key.updated",
            "key.created"
        ]
    );
    let mut request_ids = BTreeSet::new();
    for e in &events {
        assert_eq!(
            e["actor"],
            json!({"kind": "key", "id": key_id(&root_key), "owner": null})
        );
        assert_eq!(e["key_id"], id.as_str());
        request_ids.insert(e["request_id"].as_str().unwrap().to_owned());
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(request_ids.len(), 5, "each from its own request");
    assert_eq!(
        events[3]["changes"]["name"],
        json!({"old": "k", "new": "n"})
    );
    assert_eq!(events[4]["changes"]["meta"]["new"], json!({"plan": "pro"}));
    // A new key has revoked no sessions: no cut-off among its fields, and
    // the first revoke-all's comes from none.
    assert!(
        events[4]["changes"]
            .get("sessions_revoked_before")
            .is_none(),
        "{}",
        events[4]["changes"]
    );
    let cut_off = &events[1]["changes"]["sessions_revoked_before"];
    assert_eq!(cut_off["old"], Value::Null, "{cut_off}");
    assert!(
        cut_off["new"].as_u64().is_some_and(|ms| ms > 0),
        "{cut_off}"
    );
    let r = get(&t, &token, "/admin/v1/events").await;
    assert_eq!(r.status, 200, "without a key_id, every key's events");
    let all = r.body["events"].as_array().unwrap();
    // The manual clock stands still, so events of several keys share one
    // millisecond: only one key's own order is fixed.
    let this_key: Vec<&Value> = all.iter().filter(|e| e["key_id"] == id.as_str()).collect();
    assert_eq!(this_key, events, "this key's events, newest first");
    assert!(
        all.iter()
            .any(|e| e["key_id"] == key_id(&root_key) && e["action"] == "key.created"),
        "and the other keys' too: {all:?}"
    );
}

#[tokio::test]
async fn an_unknown_admin_path_is_404_and_a_wrong_method_405_before_any_token_check() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let r = t.request(Method::GET, "/admin/v1/nothing", &[], "").await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
    let r = t
        .request(Method::DELETE, "/admin/v1/keys/0123456789abcdef", &[], "")
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, PATCH")));
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let r = get(&t, &token, "/admin/v1/keys/not-a-key-id").await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
}
