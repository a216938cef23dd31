//! The OAuth2 routes: client credentials, introspection, revocation and the
//! metadata document, on the same logic as `/auth/*`.

use auth_shared::http::Route;
use auth_tests::{TestApp, TestResponse};

use auth_tests::expect::{basic, introspect, key_id, post_form};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::Method;
use serde_json::json;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn token_basic(t: &TestApp, api_key: &str, form: &str) -> TestResponse {
    post_form(t, "/oauth2/token", Some(&basic(api_key)), form).await
}

#[tokio::test]
async fn client_credentials_by_basic_auth_returns_a_bearer_token() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let r = token_basic(&t, &key, "grant_type=client_credentials&scope=read").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 7200);
    assert_eq!(r.body["scope"], "read");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let verified = t.verify(&r.token(), Some("read")).await;
    assert_eq!(verified.status, 200);
    assert_eq!(verified.body["sub"], key_id(&key));
}

#[tokio::test]
async fn a_strict_client_that_urlencodes_the_key_in_basic_auth_gets_a_token() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64, and
    // a strict encoder escapes the key's `_`.
    let encoded = key.replace('_', "%5F");
    assert_ne!(encoded, key);
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{encoded}", key_id(&key)))
    );
    let r = post_form(
        &t,
        "/oauth2/token",
        Some(&auth),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.token(),
        t.token(&key, "default").await,
        "the same key's token"
    );
}

#[tokio::test]
async fn client_credentials_by_form_fields_returns_the_same_token_as_login() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={key}",
        key_id(&key)
    );
    let oauth = post_form(&t, "/oauth2/token", None, &form).await.token();
    assert_eq!(
        t.token(&key, "default").await,
        oauth,
        "same session, same rules"
    );
    let other = post_form(
        &t,
        "/oauth2/token",
        None,
        &format!("{form}&session_id=batch"),
    )
    .await;
    assert_ne!(other.token(), oauth, "a new session_id gets a new token");
    assert_eq!(other.body["session_id"], "batch");
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_with_a_basic_challenge() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let other = t.create_key("read").await;
    let wrong_pair = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{other}", key_id(&key)))
    );
    let r = post_form(
        &t,
        "/oauth2/token",
        Some(&wrong_pair),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"));
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2\""));

    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret=nope",
        key_id(&key)
    );
    let r = post_form(&t, "/oauth2/token", None, &form).await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"));
    assert_eq!(
        r.header("www-authenticate"),
        None,
        "no Basic challenge when Basic was not used"
    );

    let r = post_form(&t, "/oauth2/token", None, "grant_type=client_credentials").await;
    assert_eq!(
        (r.status, r.error()),
        (401, "invalid_client"),
        "no credentials at all"
    );
}

#[tokio::test]
async fn token_request_errors_follow_rfc_6749() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let cases = [
        (
            "grant_type=password&username=a&password=b",
            400,
            "unsupported_grant_type",
        ),
        ("scope=read", 400, "invalid_request"),
        (
            "grant_type=client_credentials&scope=admin",
            400,
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let r = token_basic(&t, &key, form).await;
        assert_eq!(
            (r.status, r.error()),
            (status, error),
            "{form}: {:?}",
            r.body
        );
        assert!(r.body["error_description"].is_string());
    }
    let basic = basic(&key);
    let both = format!(
        "grant_type=client_credentials&client_id={}&client_secret={key}",
        key_id(&key)
    );
    let r = post_form(&t, "/oauth2/token", Some(&basic), &both).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "two authentication methods"
    );
}

#[tokio::test]
async fn a_scope_clash_in_a_session_is_an_invalid_request_not_a_409() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    token_basic(&t, &key, "grant_type=client_credentials&scope=read")
        .await
        .token();
    let r = token_basic(&t, &key, "grant_type=client_credentials&scope=write").await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));
}

#[tokio::test]
async fn introspection_describes_an_active_token() {
    let t = TestApp::spawn().await;
    let resource = t.create_key("introspect").await;
    let caller = t.create_key("read").await;
    let token = t.token(&caller, "s1").await;
    let r = introspect(&t, &resource, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let b = &r.body;
    assert_eq!(b["active"], true);
    assert_eq!(b["client_id"], key_id(&caller));
    assert_eq!(b["sub"], key_id(&caller));
    assert_eq!(b["scope"], "read");
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["iss"], auth_tests::ISSUER);
    assert_eq!(b["session_id"], "s1");
    for field in ["exp", "iat", "jti"] {
        assert!(!b[field].is_null(), "{field} missing");
    }
}

#[tokio::test]
async fn introspection_of_any_invalid_token_says_only_inactive() {
    let t = TestApp::spawn().await;
    let resource = t.create_key("introspect").await;
    let caller = t.create_key("read").await;
    let revoked = t.token(&caller, "gone").await;
    t.revoke_bearer(&revoked).await;
    for token in [revoked.as_str(), "garbage", "a.b.c"] {
        let r = introspect(&t, &resource, token).await;
        assert_eq!(
            (r.status, r.body.clone()),
            (200, json!({"active": false})),
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_key_introspects_its_own_token() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "s").await;
    let r = introspect(&t, &key, &token).await;
    assert_eq!(
        (r.status, &r.body["active"]),
        (200, &json!(true)),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["client_id"], key_id(&key));
}

#[tokio::test]
async fn a_revoked_client_learns_nothing_about_a_valid_token() {
    let t = TestApp::spawn().await;
    let resource = t.create_key("introspect").await;
    let owner = t.create_key("read").await;
    let token = t.token(&owner, "s").await;
    let revoked = t
        .revoke(json!({"api_key": resource, "revoke_api_key": true}))
        .await;
    assert_eq!(revoked.body["api_key_revoked"], true, "{:?}", revoked.body);
    let r = introspect(&t, &resource, &token).await;
    assert_eq!(
        (r.status, r.error()),
        (401, "invalid_client"),
        "{:?}",
        r.body
    );
    assert!(r.body.get("active").is_none(), "{:?}", r.body);
}

#[tokio::test]
async fn introspection_needs_client_authentication() {
    let t = TestApp::spawn().await;
    let caller = t.create_key("read").await;
    let token = t.token(&caller, "s").await;
    let r = post_form(&t, "/oauth2/introspect", None, &format!("token={token}")).await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"));
    let r = post_form(&t, "/oauth2/introspect", Some(&basic(&caller)), "").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "token is required"
    );
}

#[tokio::test]
async fn a_client_revokes_its_own_token_and_not_anothers() {
    let t = TestApp::spawn().await;
    let mine = t.create_key("read").await;
    let theirs = t.create_key("read").await;
    let my_token = t.token(&mine, "s").await;
    let their_token = t.token(&theirs, "s").await;

    let r = post_form(
        &t,
        "/oauth2/revoke",
        Some(&basic(&mine)),
        &format!("token={their_token}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["sessions_revoked"], 0);
    assert_eq!(
        t.verify(&their_token, None).await.status,
        200,
        "another client's token survives"
    );

    let r = post_form(
        &t,
        "/oauth2/revoke",
        Some(&basic(&mine)),
        &format!("token={my_token}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["sessions_revoked"].clone()),
        (200, json!(1))
    );
    assert_eq!(t.verify(&my_token, None).await.status, 401);

    let r = post_form(&t, "/oauth2/revoke", Some(&basic(&mine)), "token=unknown").await;
    assert_eq!(r.status, 200, "unknown tokens are fine (RFC 7009)");
    let r = post_form(&t, "/oauth2/revoke", None, &format!("token={my_token}")).await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"));
}

#[tokio::test]
async fn the_metadata_document_names_every_endpoint() {
    let t = TestApp::spawn().await;
    let r = t
        .request(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert_eq!(b["issuer"], auth_tests::ISSUER);
    assert_eq!(
        b["token_endpoint"],
        format!("{}/oauth2/token", auth_tests::ISSUER)
    );
    assert_eq!(
        b["introspection_endpoint"],
        format!("{}/oauth2/introspect", auth_tests::ISSUER)
    );
    assert_eq!(
        b["revocation_endpoint"],
        format!("{}/oauth2/revoke", auth_tests::ISSUER)
    );
    assert_eq!(b["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        b["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
}

#[tokio::test]
async fn each_oauth_route_lives_in_its_own_lambda() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let auth = basic(&key);
    let headers = [FORM, ("authorization", auth.as_str())];
    let token = t
        .request_to(
            Route::LOGIN,
            Method::POST,
            "/oauth2/token",
            &headers,
            "grant_type=client_credentials",
        )
        .await
        .token();
    let form = format!("token={token}");
    let introspect = t
        .request_to(
            Route::VERIFY,
            Method::POST,
            "/oauth2/introspect",
            &headers,
            &form,
        )
        .await;
    assert_eq!(introspect.body["active"], true);
    let elsewhere = t
        .request_to(
            Route::VERIFY,
            Method::POST,
            "/oauth2/token",
            &headers,
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!((elsewhere.status, elsewhere.error()), (404, "not_found"));
    let revoked = t
        .request_to(
            Route::REVOKE,
            Method::POST,
            "/oauth2/revoke",
            &headers,
            &form,
        )
        .await;
    assert_eq!(revoked.status, 200);
    let meta = t
        .request_to(
            Route::LOGIN,
            Method::POST,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!((meta.status, meta.header("allow")), (405, Some("GET")));
}
