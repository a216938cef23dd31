//! `VERIFY_CACHE_SECONDS` on every store (both layers run this file): a
//! revocation through any path is seen by verify within the setting and never
//! later, a token minted meanwhile is never refused, and with the default (0)
//! the very next verify sees it.

use auth_shared::config::TokenPolicy;
use auth_shared::domain::token::TokenError;
use auth_tests::ISSUER;
use auth_tests::expect::assert_invalid_token;
use lambda_http::http::Method;
use serde_json::json;

use crate::admin::{ALL_ADMIN, call, root};

const CACHE_SECONDS: u64 = 2;

fn cached() -> TokenPolicy {
    TokenPolicy {
        verify_cache_seconds: CACHE_SECONDS,
        ..TokenPolicy::with_issuer(ISSUER)
    }
}

/// Every way a token stops, as [`revoke`] names them.
pub(crate) const PATHS: [&str; 5] = ["token", "session", "all sessions", "key", "admin revoke"];

/// Stops `token` of `key` by `path`, one of [`PATHS`]; must succeed.
pub(crate) async fn revoke(t: &crate::backend::Service, path: &str, key: &str, token: &str) {
    let r = match path {
        "token" => t.revoke_bearer(token).await,
        "session" => t.revoke(json!({"api_key": key, "session_id": "s"})).await,
        "all sessions" => {
            t.revoke(json!({"api_key": key, "all_sessions": true}))
                .await
        }
        "key" => {
            t.revoke(json!({"api_key": key, "revoke_api_key": true}))
                .await
        }
        "admin revoke" => {
            let (_, admin) = root(t, ALL_ADMIN, None).await;
            let id = auth_tests::expect::key_id(key);
            call(
                t,
                &admin,
                Method::POST,
                &format!("/admin/v1/keys/{id}/revoke"),
                None,
            )
            .await
        }
        other => unreachable!("{other}"),
    };
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
}

#[tokio::test]
async fn with_a_verify_cache_a_revocation_by_any_path_holds_within_the_setting_and_never_later() {
    for path in PATHS {
        for (name, t) in crate::backend::apps(cached()).await {
            let key = t.create_key("read").await;
            let token = t.token(&key, "s").await;
            assert_eq!(t.verify(&token, None).await.status, 200, "{name}");
            revoke(&t, path, &key, &token).await;
            // The state read before the revocation may answer for just under the setting.
            t.clock.advance_ms(CACHE_SECONDS * 1000 - 1);
            assert_eq!(
                t.verify(&token, None).await.status,
                200,
                "{name} {path}: cached"
            );
            t.clock.advance_ms(1);
            assert_invalid_token(&t.verify(&token, None).await, TokenError::Revoked);
            t.clock.advance(60);
            assert_invalid_token(&t.verify(&token, None).await, TokenError::Revoked);
        }
    }
}

#[tokio::test]
async fn without_a_verify_cache_the_very_next_verify_sees_every_revocation() {
    for path in PATHS {
        for (name, t) in crate::backend::apps(TokenPolicy::with_issuer(ISSUER)).await {
            let key = t.create_key("read").await;
            let token = t.token(&key, "s").await;
            assert_eq!(t.verify(&token, None).await.status, 200, "{name}");
            revoke(&t, path, &key, &token).await;
            let r = t.verify(&token, None).await;
            assert_eq!(r.status, 401, "{name} {path}: {:?}", r.body);
        }
    }
}

#[tokio::test]
async fn a_cached_state_never_refuses_a_token_minted_since_nor_grants_a_missing_scope() {
    for (name, t) in crate::backend::apps(cached()).await {
        let key = t.create_key("read").await;
        let first = t.token(&key, "s").await;
        assert_eq!(t.verify(&first, None).await.status, 200, "{name}");
        // A new token of the same session: the cached session holds the old one.
        t.revoke(json!({"api_key": key, "session_id": "s"})).await;
        let second = t.token(&key, "s").await;
        assert_ne!(first, second);
        assert_eq!(
            t.verify(&second, None).await.status,
            200,
            "{name}: read again"
        );
        let r = t.verify(&second, Some("write")).await;
        assert_eq!((r.status, r.error()), (403, "insufficient_scope"), "{name}");
    }
}
