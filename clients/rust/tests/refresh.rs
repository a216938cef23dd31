//! A refresh inside the margin: a successor, and the old token keeps working.

use crate::support::{REFRESH_WINDOW, Server, until};

/// Real time: the server mints a successor only inside its own window,
/// 30 s after the first token at the earliest.
#[tokio::test]
async fn a_refresh_inside_the_margin_gets_a_new_token_and_the_old_one_still_verifies() {
    let server = Server::start();
    let source = server
        .builder()
        .refresh_window(REFRESH_WINDOW)
        .build()
        .unwrap();
    let first = source.token().await.unwrap();
    let (status, before) = server.verify(first.as_str()).await;
    assert_eq!(status, 200, "{before}");
    let mut calls = 0;
    let mut second = first.clone();
    until("a new token from the source", async || {
        calls += 1;
        second = source.token().await.unwrap();
        second != first
    })
    .await;
    let (status, new) = server.verify(second.as_str()).await;
    assert_eq!(status, 200, "{new}");
    assert_eq!(new["session_id"], before["session_id"], "the same session");
    let (status, old) = server.verify(first.as_str()).await;
    assert_eq!(status, 200, "the old token still verifies: {old}");
    assert_eq!(old["exp"], before["exp"], "until its own expiry");
    assert!(new["exp"].as_u64() > old["exp"].as_u64());
    let logins = server.count("/auth/login");
    eprintln!("refresh: {logins} logins for {calls} calls");
    assert!(logins < calls, "{logins} logins for {calls} calls");
}
