//! Introspection (RFC 7662): a resource server, authenticated by its own API
//! key, asks whether a token is active.
//!
//! It costs one store read: the token's stateless checks come first, so the
//! caller's key is read together with the key and session an authentic token
//! names. The caller is still judged first: a client that fails to
//! authenticate learns nothing about the token, not even a 503 for it.

use secrecy::SecretString;

use crate::domain::App;
use crate::domain::Error;
use crate::domain::authenticate::{Requirement, admit, caller};
use crate::domain::token::TokenError;
use crate::domain::verify::{self, Verified};
use crate::telemetry::Audit;

/// What introspection found.
#[derive(Debug)]
pub enum Introspection {
    /// The token is valid now.
    Active(Box<Verified>),
    /// Anything else: expired, revoked, forged, malformed or unknown. RFC
    /// 7662 §2.2 gives such a token no more detail.
    Inactive,
}

/// Introspects `token` for the holder of `api_key`; the key id goes in the
/// log. No token at all is [`Error::InvalidRequest`], once the caller passed.
pub async fn introspect(
    app: &App,
    api_key: &SecretString,
    token: Option<&str>,
    audit: &mut Audit,
) -> Result<Introspection, Error> {
    let caller_key = caller(api_key, audit)?;
    let claims = match token {
        Some(token) => Some(verify::authentic_claims(app, token).await),
        None => None,
    };
    let owner = match &claims {
        Some(Ok(claims)) => verify::owner(claims).ok(),
        _ => None,
    };
    let (caller_record, state) = match &owner {
        Some((key, session)) => {
            let (record, state) = app
                .store
                .caller_key_and_session(caller_key.id(), key, session)
                .await?;
            (record, Some(state))
        }
        None => (app.store.key(caller_key.id()).await?, None),
    };
    let now = app.clock.now()?;
    admit(caller_record, &caller_key, Requirement::Usable, now)?;
    let claims = claims.ok_or_else(|| Error::InvalidRequest("field token is required".into()))?;
    // The resource server's own key id is in the log; the token's owner is in the answer.
    let verified = claims.and_then(|claims| match state {
        Some(state) => verify::backed(claims, state, None, now),
        None => Err(TokenError::Revoked.into()),
    });
    match verified {
        Ok(v) => Ok(Introspection::Active(Box::new(v))),
        Err(Error::InvalidToken(_)) => Ok(Introspection::Inactive),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::admin;
    use crate::domain::api_key::ApiKey;
    use crate::domain::revoke::RevokeRequest;
    use crate::domain::scope::Scopes;
    use crate::domain::testing::{DownStore, Fixture, Outage, bearer, failure, success, tampered};

    async fn ask(app: &App, caller: &ApiKey, token: Option<&str>) -> Result<Introspection, Error> {
        introspect(app, &caller.expose(), token, &mut Audit::default()).await
    }

    #[tokio::test]
    async fn a_valid_token_is_active_with_its_claims() {
        let fx = Fixture::new();
        let owner = fx.key("read write").await;
        let server = fx.key("introspect").await;
        let issued = success(fx.login(&owner, Some("s1"), Some("read")).await);
        fx.clock.advance(200);
        for caller in [&server, &owner] {
            let Introspection::Active(v) =
                success(ask(&fx.app, caller, Some(bearer(&issued))).await)
            else {
                panic!("inactive for {caller:?}");
            };
            assert_eq!(v.claims.sub, owner.id().as_str());
            assert_eq!(
                (v.claims.sid.as_str(), v.claims.scope.as_str()),
                ("s1", "read")
            );
            assert_eq!(v.expires_in, 7000);
        }
    }

    #[tokio::test]
    async fn an_expired_revoked_forged_unknown_or_garbage_token_is_inactive() {
        let fx = Fixture::new();
        let server = fx.key("introspect").await;
        let owner = fx.key("read write").await;
        let revoked_key = fx.key("read").await;
        let expired = success(fx.login(&owner, Some("expired"), None).await);
        fx.clock.advance(7200 + 30);
        let of_revoked_session = success(fx.login(&owner, Some("gone"), None).await);
        let session = RevokeRequest::Session {
            api_key: owner.expose(),
            session_id: Some("gone".into()),
        };
        success(fx.revoke(session).await);
        let of_revoked_key = success(fx.login(&revoked_key, None, None).await);
        fx.change_key(&revoked_key, admin::revoke).await;
        let wide = success(fx.login(&owner, Some("wide"), None).await);
        fx.change_key(&owner, |r| r.scopes = Scopes::parse("read").unwrap())
            .await;
        let stranger = Fixture::new();
        let stranger_key = stranger.key("read").await;
        let unknown = success(stranger.login(&stranger_key, None, None).await);
        let live = success(fx.login(&owner, Some("live"), None).await);

        let tokens = [
            bearer(&expired).to_owned(),
            bearer(&of_revoked_session).to_owned(),
            bearer(&of_revoked_key).to_owned(),
            bearer(&wide).to_owned(),
            bearer(&unknown).to_owned(),
            tampered(&live),
            "garbage".to_owned(),
        ];
        for (i, token) in tokens.iter().enumerate() {
            let answer = success(ask(&fx.app, &server, Some(token)).await);
            assert!(
                matches!(answer, Introspection::Inactive),
                "token {i}: {answer:?}"
            );
        }
        let answer = success(ask(&fx.app, &server, Some(bearer(&live))).await);
        assert!(matches!(answer, Introspection::Active(_)), "{answer:?}");
    }

    #[tokio::test]
    async fn a_caller_with_a_bad_key_is_invalid_client_even_when_the_token_is_valid() {
        let fx = Fixture::new();
        let owner = fx.key("read").await;
        let issued = success(fx.login(&owner, None, None).await);
        let revoked = fx.key("introspect").await;
        fx.change_key(&revoked, admin::revoke).await;
        let callers = [
            revoked,
            ApiKey::generate().unwrap(),
            ApiKey::regenerate(owner.id()).unwrap(),
        ];
        for caller in &callers {
            for token in [Some(bearer(&issued)), Some("garbage"), None] {
                let e = failure(ask(&fx.app, caller, token).await);
                assert!(
                    matches!(e, Error::InvalidClient),
                    "{caller:?}, {token:?}: {e:?}"
                );
            }
        }
        let malformed = SecretString::from("bauth_nope");
        let e = failure(
            introspect(
                &fx.app,
                &malformed,
                Some(bearer(&issued)),
                &mut Audit::default(),
            )
            .await,
        );
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
    }

    #[tokio::test]
    async fn no_token_from_a_good_caller_is_invalid_request() {
        let fx = Fixture::new();
        let server = fx.key("introspect").await;
        let e = failure(ask(&fx.app, &server, None).await);
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    }

    #[tokio::test]
    async fn introspection_on_a_store_that_is_down_is_unavailable_never_inactive() {
        let fx = Fixture::new();
        let server = fx.key("introspect").await;
        let issued = success(fx.login(&server, None, None).await);
        let down = fx.on(DownStore(Outage::Refuses));
        for token in [Some(bearer(&issued)), Some("garbage"), None] {
            let e = failure(ask(&down, &server, token).await);
            assert!(matches!(e, Error::Unavailable(_)), "{token:?}: {e:?}");
        }
    }
}
