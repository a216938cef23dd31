//! The reqwest-middleware integration: one retry after a 401, never more.

use bearer_auth_client::{BearerAuth, Builder, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

use crate::support::Server;

/// A server, a source on it made by `build`, a client with the middleware,
/// and the server's verify URL (an API that wants the bearer token).
fn start(
    build: impl FnOnce(Builder) -> Builder,
) -> (Server, TokenSource, ClientWithMiddleware, String) {
    let server = Server::start();
    let source = build(server.builder()).build().unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(source.clone()))
        .build();
    let verify = format!("{}/auth/verify", server.base);
    (server, source, client, verify)
}

#[tokio::test]
async fn a_request_carries_the_sources_token() {
    let (server, _source, client, verify) = start(|b| b);
    for _ in 0..3 {
        assert_eq!(client.get(&verify).send().await.unwrap().status(), 200);
    }
    assert_eq!(server.count("/auth/login"), 1);
}

#[tokio::test]
async fn after_its_session_is_revoked_a_request_logs_in_again_once_and_succeeds() {
    let (server, source, client, verify) = start(|b| b.session_id("worker-1"));
    assert_eq!(client.get(&verify).send().await.unwrap().status(), 200);
    let before = source.token().await.unwrap();
    server.revoke_session("worker-1").await;
    let response = client.get(&verify).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(source.token().await.unwrap(), before, "a new token");
    assert_eq!(server.count("/auth/login"), 2, "one login again");
    assert_eq!(server.count("/auth/verify"), 3, "the 401 and its one retry");
}

#[tokio::test]
async fn after_its_key_is_revoked_a_request_retries_once_then_fails_with_the_reason() {
    let (server, _source, client, verify) = start(|b| b);
    assert_eq!(client.get(&verify).send().await.unwrap().status(), 200);
    server.revoke_key().await;
    for round in 1..=2 {
        let error = client.get(&verify).send().await.unwrap_err();
        let reqwest_middleware::Error::Middleware(error) = error else {
            panic!("not the token source's error: {error:?}");
        };
        let error = error.downcast_ref::<bearer_auth_client::Error>().unwrap();
        assert_eq!(error.reason(), "invalid_client", "{error}");
        assert_eq!(error.status(), Some(401));
        // Each call logs in once more; only the first had a token to send.
        assert_eq!(server.count("/auth/login"), 1 + round);
        assert_eq!(server.count("/auth/verify"), 2);
    }
}

#[tokio::test]
async fn a_401_after_the_one_retry_is_returned_as_it_is() {
    let (server, _source, client, _) = start(|b| b);
    // Introspection wants client credentials, not a bearer token: always 401.
    let response = client
        .post(format!("{}/oauth2/introspect", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(server.count("/oauth2/introspect"), 2, "one retry");
    // The session is alive, so the second login returned the same token.
    assert_eq!(server.count("/auth/login"), 2);
}
