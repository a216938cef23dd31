//! `revoke`: ends the session, drops the token whatever happens.

use std::time::Duration;

use crate::support::Server;

#[tokio::test]
async fn revoke_ends_the_session_and_the_next_call_logs_in_again() {
    let server = Server::start();
    let source = server.source();
    let first = source.token().await.unwrap();
    source.revoke().await.unwrap();
    assert_eq!(server.verify(first.as_str()).await.0, 401, "revoked");
    let second = source.token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(server.verify(second.as_str()).await.0, 200);
    assert_eq!(server.count("/auth/login"), 2);
}

#[tokio::test]
async fn revoke_without_a_token_sends_nothing() {
    let server = Server::start();
    let source = server.source();
    source.revoke().await.unwrap();
    assert_eq!(server.count("/auth/revoke"), 0);
    assert_eq!(server.count("/auth/login"), 0);
}

#[tokio::test]
async fn a_failed_revoke_is_an_error_and_still_drops_the_token() {
    let mut server = Server::start();
    let source = server
        .builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = source.token().await.unwrap();
    server.stop();
    let error = source.revoke().await.unwrap_err();
    assert_eq!(error.reason(), "unreachable", "{error}");
    assert!(error.to_string().starts_with("revoke failed"), "{error}");
    server.restart();
    // Dropped: the next call logs in (the session is alive: the same token).
    assert_eq!(source.token().await.unwrap(), first);
    assert_eq!(server.count("/auth/login"), 2);
    assert_eq!(server.count("/auth/revoke"), 0);
}
