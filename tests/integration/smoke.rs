use auth_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_key_logs_in_verifies_and_revokes() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let login = t.login(json!({"api_key": key})).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let token = login.token();
    assert_eq!(t.verify(&token, Some("read")).await.status, 200);
    assert_eq!(t.revoke_bearer(&token).await.status, 200);
    assert_eq!(t.verify(&token, None).await.status, 401);
}
