//! A key's owner and metadata come back with every check of its tokens:
//! verify, introspection and the authorizer's context, at no extra read.

use auth_tests::TestApp;
use auth_tests::authorizer::{authorize, fixture};
use auth_tests::expect::introspect;
use serde_json::{Value, json};

fn meta() -> Value {
    json!({"plan": "pro", "limits": {"rps": 50}, "beta": true})
}

#[tokio::test]
async fn verify_answers_the_owner_and_metadata_of_the_tokens_key() {
    let t = TestApp::spawn().await;
    let key = t.create_owned_key("read", "acme:42", meta()).await;
    let token = t.token(&key, "s").await;
    let r = t.verify(&token, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["owner"], "acme:42");
    assert_eq!(r.body["meta"], meta());
}

#[tokio::test]
async fn a_key_without_owner_or_metadata_answers_neither() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "s").await;
    let r = t.verify(&token, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.body.as_object().unwrap();
    assert!(
        !body.contains_key("owner") && !body.contains_key("meta"),
        "{body:?}"
    );
}

#[tokio::test]
async fn introspection_answers_the_owner_and_metadata_of_the_tokens_key_not_the_callers() {
    let t = TestApp::spawn().await;
    let resource = t
        .create_owned_key("introspect", "resource-server", json!({"role": "rs"}))
        .await;
    let key = t.create_owned_key("read", "acme:42", meta()).await;
    let token = t.token(&key, "s").await;
    let r = introspect(&t, &resource, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["owner"], "acme:42");
    assert_eq!(r.body["meta"], meta());
}

#[tokio::test]
async fn the_authorizer_passes_the_owner_and_the_metadata_as_json_text() {
    let t = TestApp::spawn().await;
    let key = t.create_owned_key("read", "acme:42", meta()).await;
    let token = t.token(&key, "default").await;
    for name in ["http-api-valid.json", "rest-token-valid.json"] {
        let r = authorize(&t, fixture(name, &token)).await.unwrap();
        let context = &r["context"];
        assert_eq!(context["owner"], "acme:42", "{name}: {r}");
        let text = context["meta"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            meta(),
            "{name}"
        );
    }
}
