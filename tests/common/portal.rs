//! The customer portal's API as a provider's backend and its customer's
//! browser use it: a root key holding `admin:portal` asks for a one-time
//! link, the page trades the link's code for an owner-bound portal token,
//! and that token manages the owner's keys and nothing else.

use auth_shared::config::TokenPolicy;
use auth_tests::ISSUER;
use lambda_http::http::Method;
use serde_json::{Value, json};

use crate::admin::{ALL_ADMIN, call, key_path, made, root};

const RETURN: &str = "https://app.example.com/billing";

async fn service() -> crate::backend::Service {
    let mut t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    t.app.admin.portal_return_origins = vec!["https://app.example.com".into()];
    t.app.admin.portal_max_keys = 3;
    t
}

/// A link for `owner` allowed `scopes`, made by a root key holding `admin:portal`.
async fn link(t: &crate::backend::Service, owner: &str, scopes: &str) -> String {
    let (_, portal) = root(t, "admin:portal", None).await;
    let body = json!({"owner": owner, "allowed_scopes": scopes, "return_url": RETURN});
    let r = call(
        t,
        &portal,
        Method::POST,
        "/admin/v1/portal-sessions",
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let url = r.body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{ISSUER}/console/portal#code=")),
        "{url}"
    );
    url.rsplit_once("#code=").unwrap().1.to_owned()
}

async fn exchange(t: &crate::backend::Service, code: &str) -> auth_tests::TestResponse {
    let body = json!({"code": code}).to_string();
    let headers = [("content-type", "application/json")];
    t.request(
        Method::POST,
        "/admin/v1/portal-sessions/exchange",
        &headers,
        &body,
    )
    .await
}

async fn portal_token(t: &crate::backend::Service, owner: &str, scopes: &str) -> String {
    let r = exchange(t, &link(t, owner, scopes).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_link_works_once_and_its_token_is_bound_to_its_owner_for_30_minutes() {
    let t = service().await;
    let code = link(&t, "acme", "read write").await;
    let r = exchange(&t, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1800);
    assert_eq!(r.body["owner"], "acme");
    assert_eq!(r.body["allowed_scopes"], "read write");
    assert_eq!(r.body["return_url"], RETURN);
    assert_eq!(r.body["max_keys"], 3);
    let again = exchange(&t, &code).await;
    assert_eq!((again.status, again.error()), (400, "invalid_grant"));

    let token = r.body["access_token"].as_str().unwrap();
    let keys = call(&t, token, Method::GET, "/admin/v1/keys", None).await;
    assert_eq!(keys.status, 200, "{keys:?}");
    t.clock.advance(1800);
    let late = call(&t, token, Method::GET, "/admin/v1/keys", None).await;
    assert_eq!((late.status, late.error()), (401, "invalid_token"));
}

#[tokio::test]
async fn a_link_not_used_within_5_minutes_or_a_made_up_code_is_refused_alike() {
    let t = service().await;
    let code = link(&t, "acme", "read").await;
    t.clock.advance(300);
    for code in [code.as_str(), &"A".repeat(43), "short", "", "é"] {
        let r = exchange(&t, code).await;
        assert_eq!((r.status, r.error()), (400, "invalid_grant"), "{code:?}");
    }
    let fresh = link(&t, "acme", "read").await;
    t.clock.advance(299);
    assert_eq!(exchange(&t, &fresh).await.status, 200);
}

#[tokio::test]
async fn a_link_is_refused_for_another_owner_a_reserved_scope_or_a_foreign_return_url() {
    let t = service().await;
    let (_, bound) = root(&t, "admin:portal", Some("acme")).await;
    let path = "/admin/v1/portal-sessions";
    let cases = [
        (
            &bound,
            json!({"owner": "globex", "allowed_scopes": "read"}),
            403,
            "owner_mismatch",
        ),
        (
            &bound,
            json!({"owner": "acme", "allowed_scopes": "read admin:keys:read"}),
            400,
            "invalid_scope",
        ),
        (
            &bound,
            json!({"owner": "acme", "allowed_scopes": "portal"}),
            400,
            "invalid_scope",
        ),
        (
            &bound,
            json!({"owner": "acme", "allowed_scopes": "read", "return_url": "https://evil.example.com/"}),
            400,
            "invalid_request",
        ),
        (
            &bound,
            json!({"owner": "acme", "allowed_scopes": "read", "return_url": "javascript:alert(1)"}),
            400,
            "invalid_request",
        ),
        (
            &bound,
            json!({"owner": "a b", "allowed_scopes": "read"}),
            400,
            "invalid_request",
        ),
        (&bound, json!({"owner": "acme"}), 400, "invalid_request"),
    ];
    for (token, body, status, error) in cases {
        let r = call(&t, token, Method::POST, path, Some(body.clone())).await;
        assert_eq!((r.status, r.error()), (status, error), "{body}");
    }
    let (_, writer) = root(&t, ALL_ADMIN, None).await;
    let body = json!({"owner": "acme", "allowed_scopes": "read"});
    let r = call(&t, &writer, Method::POST, path, Some(body.clone())).await;
    assert_eq!((r.status, r.error()), (403, "insufficient_scope"));
    let ok = call(&t, &bound, Method::POST, path, Some(body)).await;
    assert_eq!(ok.status, 201, "{ok:?}");
}

#[tokio::test]
async fn a_portal_token_manages_its_owners_keys_and_never_sees_another_owners() {
    let t = service().await;
    let (_, admin) = root(&t, ALL_ADMIN, None).await;
    let (theirs, _) = made(
        &t,
        &admin,
        json!({"name": "b", "scopes": "read", "owner": "globex"}),
    )
    .await;
    let token = portal_token(&t, "acme", "read write").await;

    let (mine, secret) = made(&t, &token, json!({"name": "ci", "scopes": "read"})).await;
    let view = call(&t, &token, Method::GET, &key_path(&mine, ""), None).await;
    assert_eq!(view.body["owner"], "acme");
    assert_eq!(view.body["created_by"]["kind"], "portal");
    let session = t.token(&secret, "s").await;
    assert_eq!(t.verify(&session, None).await.status, 200);

    let listed = call(&t, &token, Method::GET, "/admin/v1/keys", None).await;
    let ids: Vec<&Value> = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["key_id"])
        .collect();
    assert_eq!(ids, [&json!(mine)]);
    let other = call(&t, &token, Method::GET, "/admin/v1/keys?owner=globex", None).await;
    assert_eq!(other.body["keys"], json!([]));
    for (method, rest) in [
        (Method::GET, ""),
        (Method::POST, "/rotate"),
        (Method::POST, "/revoke"),
        (Method::GET, "/sessions"),
        (Method::POST, "/sessions/revoke"),
    ] {
        let r = call(&t, &token, method.clone(), &key_path(&theirs, rest), None).await;
        assert_eq!((r.status, r.error()), (404, "not_found"), "{method} {rest}");
    }

    let rotated = call(
        &t,
        &token,
        Method::POST,
        &key_path(&mine, "/rotate"),
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let revoked = call(&t, &token, Method::POST, &key_path(&mine, "/revoke"), None).await;
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(t.verify(&session, None).await.status, 401);

    let events = call(&t, &token, Method::GET, "/admin/v1/events", None).await;
    let events = events.body["events"].as_array().unwrap().clone();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["owner"], "acme", "{e}");
    }
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["key_id"] == json!(mine))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.rotated", "key.created"]);
    for e in events.iter().filter(|e| e["key_id"] == json!(mine)) {
        assert_eq!(e["actor"]["kind"], "portal", "{e}");
        assert_eq!(e["actor"]["owner"], "acme", "{e}");
    }
    let created = events
        .iter()
        .find(|e| e["action"] == "portal.session_created")
        .unwrap();
    assert_eq!(created["key_id"], Value::Null);
    assert_eq!(created["actor"]["kind"], "key");
}

#[tokio::test]
async fn a_portal_key_holds_only_allowed_scopes_no_owner_or_meta_and_up_to_the_cap() {
    let t = service().await;
    let token = portal_token(&t, "acme", "read").await;
    let refused = [
        (
            json!({"name": "k", "scopes": "write"}),
            400,
            "invalid_scope",
        ),
        (
            json!({"name": "k", "scopes": "read admin:keys:read"}),
            403,
            "insufficient_scope",
        ),
        (
            json!({"name": "k", "scopes": "read", "owner": "acme"}),
            403,
            "insufficient_scope",
        ),
        (
            json!({"name": "k", "scopes": "read", "meta": {}}),
            403,
            "insufficient_scope",
        ),
    ];
    for (body, status, error) in refused {
        let r = call(
            &t,
            &token,
            Method::POST,
            "/admin/v1/keys",
            Some(body.clone()),
        )
        .await;
        assert_eq!((r.status, r.error()), (status, error), "{body}");
    }
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            made(
                &t,
                &token,
                json!({"name": format!("k{n}"), "scopes": "read"}),
            )
            .await
            .0,
        );
    }
    let over = call(
        &t,
        &token,
        Method::POST,
        "/admin/v1/keys",
        Some(json!({"name": "k", "scopes": "read"})),
    )
    .await;
    assert_eq!((over.status, over.error()), (409, "too_many_keys"));
    let patch = call(
        &t,
        &token,
        Method::PATCH,
        &key_path(&ids[0], ""),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!((patch.status, patch.error()), (403, "insufficient_scope"));
    let links = call(
        &t,
        &token,
        Method::POST,
        "/admin/v1/portal-sessions",
        Some(json!({"owner": "acme", "allowed_scopes": "read"})),
    )
    .await;
    assert_eq!((links.status, links.error()), (403, "insufficient_scope"));
    // A revoked key frees its place.
    call(
        &t,
        &token,
        Method::POST,
        &key_path(&ids[0], "/revoke"),
        None,
    )
    .await;
    made(&t, &token, json!({"name": "k3", "scopes": "read"})).await;
}

#[tokio::test]
async fn signing_out_ends_the_portal_token_and_api_routes_never_accept_it() {
    let t = service().await;
    let token = portal_token(&t, "acme", "read").await;
    assert_eq!(t.verify(&token, None).await.status, 401, "not an API token");
    let auth = format!("Bearer {token}");
    let out = t
        .request(
            Method::POST,
            "/auth/revoke",
            &[("authorization", auth.as_str())],
            "",
        )
        .await;
    assert_eq!(out.status, 200, "{out:?}");
    let r = call(&t, &token, Method::GET, "/admin/v1/keys", None).await;
    assert_eq!((r.status, r.error()), (401, "invalid_token"));
}
