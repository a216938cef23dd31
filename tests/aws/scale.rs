//! The layout that lets one busy key scale: each session on its own
//! partition, listed through the `sessions_by_key` index.

use std::collections::BTreeSet;
use std::sync::Arc;

use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_shared::domain::api_key::KeyId;
use auth_tests::aws::AwsTestApp;
use lambda_http::http::Method;
use serde_json::json;

use crate::admin::{ALL_ADMIN, call, key_path, made, root};

#[tokio::test]
async fn a_keys_sessions_are_listed_through_the_index_page_after_page_and_no_others() {
    let mut t = AwsTestApp::spawn().await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, key) = made(&t, &token, json!({"name": "busy", "scopes": "read"})).await;
    let sessions = ["a", "b", "c", "d", "e"];
    for session in sessions {
        t.token(&key, session).await;
    }
    let other = t.create_key("read").await;
    t.token(&other, "a").await;
    // Pages of two items: five sessions take three pages.
    t.app.store = Arc::new(DynamoDbStore::new(t.dynamodb(), &t.table).with_session_page(2));

    let id = KeyId::parse(&id).unwrap();
    let listed: BTreeSet<String> = t
        .store()
        .list_sessions(&id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.session_id().to_owned())
        .collect();
    assert_eq!(listed, BTreeSet::from(sessions.map(String::from)));
    let live = t.store().unexpired_sessions(&id, t.clock.seconds()).await;
    assert_eq!(live.unwrap().len(), sessions.len(), "their times too");

    let r = call(
        &t,
        &token,
        Method::GET,
        &key_path(id.as_str(), "/sessions?limit=10"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let shown: BTreeSet<&str> = r.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, BTreeSet::from(sessions), "the admin listing: {r:?}");
}
