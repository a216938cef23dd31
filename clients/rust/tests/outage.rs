//! The server stopped during a refresh, and back again.

use std::time::Duration;

use bearer_auth_client::testing::TestClock;

use crate::support::{Server, fail_a_refresh};

#[tokio::test]
async fn with_the_server_down_the_cached_token_lasts_until_expiry_then_unreachable_and_a_restart_recovers()
 {
    let mut server = Server::start();
    let clock = TestClock::new();
    let source = server
        .builder()
        .session_id("outage")
        .test_clock(clock.clone())
        .build()
        .unwrap();
    let first = fail_a_refresh(&mut server, &clock, &source, "outage").await;
    for _ in 0..10 {
        assert_eq!(
            source.token().await.unwrap(),
            first,
            "kept after the failure"
        );
    }
    // Past expiry: a clear error, and again on the next call (it tries each time).
    clock.advance(Duration::from_secs(20));
    for _ in 0..3 {
        let error = source.token().await.unwrap_err();
        assert_eq!(error.reason(), "unreachable", "{error}");
        assert!(error.is_unreachable());
        assert!(
            error.to_string().starts_with("login failed: unreachable"),
            "{error}"
        );
    }
    server.restart();
    let token = source.token().await.unwrap();
    assert_eq!(server.verify(token.as_str()).await.0, 200);
    assert_eq!(source.token().await.unwrap(), token, "cached again");
}
