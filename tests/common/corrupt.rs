//! The 500 row of the error table in README.md, on every store (both layers
//! run this file, each on its `backend`): a stored key that no longer
//! decodes is `server_error`, and the answer names nothing internal.

use auth_shared::config::TokenPolicy;
use auth_tests::ISSUER;
use auth_tests::expect::assert_error;
use serde_json::{Value, json};

#[tokio::test]
async fn a_corrupt_key_item_is_500_server_error_with_nothing_internal() {
    let t = crate::backend::app(TokenPolicy::with_issuer(ISSUER)).await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    t.corrupt_key_item(&key).await;

    let login = t.login(json!({"api_key": key})).await;
    let verify = t.verify(&token, None).await;
    for r in [login, verify] {
        assert_error(&r, 500, "server_error");
        let Value::Object(body) = &r.body else {
            panic!("not an object: {:?}", r.body)
        };
        let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["error", "error_description", "request_id"]);
        let description = r.body["error_description"].as_str().unwrap().to_lowercase();
        for internal in [
            "scopes",
            "attribute",
            "number",
            "key#",
            "dynamodb",
            "sqlite",
            "row",
            &t.store_location().to_lowercase(),
        ] {
            assert!(!description.contains(internal), "{description}");
        }
    }
}
