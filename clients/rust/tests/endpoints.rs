//! Sessions, scopes and the OAuth2 token endpoint.

use bearer_auth_client::{TokenEndpoint, TokenSource};

use crate::support::Server;

#[tokio::test]
async fn each_source_gets_a_random_session_of_its_own() {
    let server = Server::start();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let source = server.source();
        let token = source.token().await.unwrap();
        let (status, body) = server.verify(token.as_str()).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(body["session_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(sessions[0], sessions[1]);
    assert!(
        sessions.iter().all(|s| s.starts_with("rust-")),
        "{sessions:?}"
    );
}

#[tokio::test]
async fn the_oauth2_endpoint_logs_in_to_the_same_session_with_the_scope_asked_for() {
    let server = Server::start();
    let source = |endpoint| {
        server
            .builder()
            .session_id("reports")
            .scope("read")
            .token_endpoint(endpoint)
            .build()
            .unwrap()
    };
    let oauth2 = source(TokenEndpoint::OAuth2Token).token().await.unwrap();
    let login = source(TokenEndpoint::AuthLogin).token().await.unwrap();
    assert_eq!(oauth2, login, "one session, one token");
    let (status, body) = server.verify(oauth2.as_str()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["session_id"], "reports");
    assert_eq!(server.count("/oauth2/token"), 1);
}

#[tokio::test]
async fn a_base_url_that_is_not_http_is_refused_at_build() {
    for base in ["ftp://example.com", "not a url", ""] {
        let error = TokenSource::builder(base, "bauth_x").build().unwrap_err();
        assert_eq!(error.reason(), "invalid_configuration", "{base}: {error}");
    }
}
