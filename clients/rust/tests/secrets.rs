//! Neither the API key nor a token in any Debug output, error or log line.

use std::time::Duration;

use bearer_auth_client::testing::TestClock;
use bearer_auth_client::{BearerAuth, TokenSource};
use reqwest_middleware::ClientBuilder;

use crate::support::{Server, fail_a_refresh, logs};

#[tokio::test]
async fn the_key_and_tokens_appear_in_no_debug_output_error_or_log() {
    let mut server = Server::start();
    let clock = TestClock::new();
    let session = "secrets";
    let builder = server
        .builder()
        .session_id(session)
        .test_clock(clock.clone());
    let mut printed = vec![format!("{builder:?}")];
    let source = builder.build().unwrap();
    let middleware = BearerAuth::new(source.clone());
    let token = source.token().await.unwrap();
    printed.extend([
        format!("{source:?}"),
        format!("{token:?}"),
        format!("{middleware:?}"),
    ]);

    // A failed refresh, then an error once the token has expired, also
    // through the middleware.
    fail_a_refresh(&mut server, &clock, &source, session).await;
    clock.advance(Duration::from_secs(20));
    let error = source.token().await.unwrap_err();
    printed.extend([error.to_string(), format!("{error:?}")]);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let error = client
        .get(format!("{}/auth/verify", server.base))
        .send()
        .await
        .unwrap_err();
    printed.extend([error.to_string(), format!("{error:?}")]);

    // A wrong key, and a revoke.
    server.restart();
    let wrong_key = format!(
        "bauth_{}_{}_{}",
        "0".repeat(16),
        "1".repeat(64),
        "2".repeat(8)
    );
    let wrong = TokenSource::builder(&server.base, &wrong_key)
        .session_id(session)
        .build()
        .unwrap();
    let error = wrong.token().await.unwrap_err();
    assert_eq!(error.reason(), "invalid_client");
    printed.extend([
        format!("{wrong:?}"),
        error.to_string(),
        format!("{error:?}"),
    ]);
    let current = source.token().await.unwrap();
    source.revoke().await.unwrap();

    let logs = logs();
    let ours: Vec<&str> = logs.lines().filter(|l| l.contains(session)).collect();
    assert!(ours.iter().any(|l| l.contains("logged in")), "{logs}");
    assert!(ours.iter().any(|l| l.contains("login failed")), "{logs}");
    let secrets = [
        server.key.as_str(),
        server.key.split('_').nth(2).unwrap(),
        wrong_key.as_str(),
        wrong_key.split('_').nth(2).unwrap(),
        token.as_str(),
        token.as_str().rsplit('.').next().unwrap(),
        current.as_str(),
    ];
    for text in printed.iter().map(String::as_str).chain([logs.as_str()]) {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in: {text}");
        }
    }
}
