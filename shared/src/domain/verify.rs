//! Verify: is this bearer token valid now, and does it hold these scopes?
//!
//! The token checks of [`crate::domain::token`] run first, in their fixed order; then
//! one consistent read of the key and the session: the key must be active and
//! unexpired and still hold every scope of the token, its revoke-all cutoff
//! must be older than the token's mint time, and the session must still hold
//! this token. Any failure to read that state (or the clock) is a 503, never
//! a yes.

use crate::domain::Error;
use crate::domain::api_key::KeyId;
use crate::domain::app::App;
use crate::domain::owner::{Meta, Owner};
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::KeyAndSession;
use crate::domain::token::{self, Claims, TokenError};
use crate::domain::usage;
use crate::telemetry::Audit;

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified {
    /// Its claims.
    pub claims: Claims,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The owner of its key, when the key has one.
    pub owner: Option<Owner>,
    /// Its key's metadata, when set.
    pub meta: Option<Meta>,
}

/// Verifies `token` and, when given, that it holds every scope of `required`.
pub async fn verify(
    app: &App,
    token: Option<&str>,
    required: Option<&str>,
    audit: &mut Audit,
) -> Result<Verified, Error> {
    let required = required
        .map(Scopes::parse)
        .transpose()
        .map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let claims = authentic_claims(app, token.ok_or(TokenError::Missing)?).await?;
    verify_authentic(app, claims, required.as_ref(), audit).await
}

/// [`verify`] of claims [`authentic_claims`] has passed: the state read and
/// its checks.
pub async fn verify_authentic(
    app: &App,
    claims: Claims,
    required: Option<&Scopes>,
    audit: &mut Audit,
) -> Result<Verified, Error> {
    audit.key_id = Some(claims.sub.clone());
    audit.session_id = Some(claims.sid.clone());
    let (key, session) = owner(&claims)?;
    let read_ms = app.clock.now_ms()?;
    // Only a yes is reused (see verify_cache): a refusal is read again.
    if let Some(state) = app.verify_cache.fresh(&key, &session, read_ms)
        && let Ok(verified) = backed(claims.clone(), state, required, app.clock.now()?)
    {
        return Ok(verified);
    }
    let state = app.store.key_and_session(&key, &session).await?;
    app.verify_cache.keep(&key, &session, &state, read_ms);
    let last_used_at = state.0.as_ref().and_then(|r| r.last_used_at);
    let now = app.clock.now()?;
    let verified = backed(claims, state, required, now)?;
    usage::note(app, &key, last_used_at, now).await;
    Ok(verified)
}

/// The key and session a token names. Ids that cannot exist were never
/// issued, so such a token is as good as revoked.
pub fn owner(claims: &Claims) -> Result<(KeyId, SessionId), TokenError> {
    match (KeyId::parse(&claims.sub), SessionId::parse(&claims.sid)) {
        (Some(key), Ok(session)) => Ok((key, session)),
        _ => Err(TokenError::Revoked),
    }
}

/// The stateful checks on authentic `claims`, given the stored key and
/// session they name: the key must be active, unexpired and still hold every
/// scope of the token (narrowing a key's scopes takes effect at once), the
/// session must still hold this token, minted after the key's revoke-all
/// cutoff, and the token must hold every `required` scope.
pub fn backed(
    claims: Claims,
    (record, stored): KeyAndSession,
    required: Option<&Scopes>,
    now: u64,
) -> Result<Verified, Error> {
    let held = Scopes::parse(&claims.scope).map_err(|_| TokenError::Claims)?;
    let live = match (&record, &stored) {
        (Some(record), Some(stored)) => {
            record.is_usable(now)
                && held.is_subset(&record.scopes)
                && stored
                    .holding(&claims)
                    .is_some_and(|t| !record.revoked_session_minted_at(t.minted_ms))
        }
        _ => false,
    };
    let Some(record) = record.filter(|_| live) else {
        return Err(TokenError::Revoked.into());
    };
    if let Some(required) = required
        && !required.is_subset(&held)
    {
        return Err(Error::InsufficientScope(required.to_string()));
    }
    Ok(Verified {
        expires_in: claims.exp.saturating_sub(now),
        claims,
        owner: record.owner,
        meta: record.meta,
    })
}

/// The stateless checks: size, shape, algorithm, kid, signature, time, issuer.
/// Errors other than [`Error::InvalidToken`] mean the key ring could not be read.
pub async fn authentic_claims(app: &App, raw: &str) -> Result<Claims, Error> {
    let unverified = token::inspect(raw)?;
    let key = app
        .keys
        .find(unverified.kid())
        .await?
        .ok_or(TokenError::UnknownKey)?;
    let claims = token::verify_signature(&unverified, &key)?;
    token::check_claims(&claims, &app.policy, app.clock.now()?)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::admin;
    use crate::domain::revoke::RevokeRequest;
    use crate::domain::testing::{
        DownStore, Fixture, NOW, Outage, bearer, failure, success, tampered,
    };

    fn revoked(e: &Error) -> bool {
        matches!(e, Error::InvalidToken(TokenError::Revoked))
    }

    #[tokio::test]
    async fn a_valid_token_verifies_with_its_claims_and_the_seconds_it_has_left() {
        let fx = Fixture::new();
        let key = fx.key("read write").await;
        let issued = success(fx.login(&key, Some("s1"), None).await);
        fx.clock.advance(100);
        let verified = success(fx.verify(&issued, Some("write")).await);
        assert_eq!(verified.expires_in, 7100);
        assert_eq!(verified.claims.sub, key.id().as_str());
        assert_eq!(verified.claims.sid, "s1");
        assert_eq!(verified.claims.scope, "read write");
        assert_eq!(verified.claims.iss, "https://auth.test");
    }

    #[tokio::test]
    async fn a_token_is_expired_once_its_expiry_and_the_leeway_have_passed() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        fx.clock.advance(7200 + 29);
        assert_eq!(success(fx.verify(&issued, None).await).expires_in, 0);
        fx.clock.advance(1);
        let e = failure(fx.verify(&issued, None).await);
        assert!(
            matches!(e, Error::InvalidToken(TokenError::Expired)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_token_of_a_revoked_session_is_revoked() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let other = success(fx.login(&key, Some("other"), None).await);
        success(
            fx.revoke(RevokeRequest::Session {
                api_key: key.expose(),
                session_id: None,
            })
            .await,
        );
        assert!(revoked(&failure(fx.verify(&issued, None).await)));
        success(fx.verify(&other, None).await);
    }

    #[tokio::test]
    async fn a_token_of_a_revoked_or_expired_key_is_revoked() {
        let fx = Fixture::new();
        let revoked_key = fx.key("read").await;
        let expiring_key = fx.key("read").await;
        let of_revoked = success(fx.login(&revoked_key, None, None).await);
        let of_expiring = success(fx.login(&expiring_key, None, None).await);
        fx.change_key(&revoked_key, admin::revoke).await;
        fx.change_key(&expiring_key, |r| r.expires_at = Some(NOW + 60))
            .await;
        success(fx.verify(&of_expiring, None).await);
        fx.clock.advance(60);
        assert!(revoked(&failure(fx.verify(&of_revoked, None).await)));
        assert!(revoked(&failure(fx.verify(&of_expiring, None).await)));
    }

    #[tokio::test]
    async fn a_token_holding_a_scope_taken_from_its_key_is_revoked_at_once() {
        let fx = Fixture::new();
        let key = fx.key("read write").await;
        let wide = success(fx.login(&key, None, None).await);
        let narrow = success(fx.login(&key, Some("reader"), Some("read")).await);
        fx.change_key(&key, |r| r.scopes = Scopes::parse("read").unwrap())
            .await;
        assert!(revoked(&failure(fx.verify(&wide, None).await)));
        success(fx.verify(&narrow, None).await);
    }

    #[tokio::test]
    async fn a_required_scope_the_token_lacks_is_insufficient_scope_naming_what_was_required() {
        let fx = Fixture::new();
        let key = fx.key("read write").await;
        let issued = success(fx.login(&key, None, None).await);
        let e = failure(fx.verify(&issued, Some("read admin")).await);
        assert!(
            matches!(&e, Error::InsufficientScope(s) if s == "admin read"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_malformed_required_scope_is_invalid_request() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        for required in ["", "read  write", "a\"b"] {
            let e = failure(fx.verify(&issued, Some(required)).await);
            assert!(matches!(e, Error::InvalidRequest(_)), "{required:?}: {e:?}");
        }
    }

    #[tokio::test]
    async fn no_token_is_invalid_token_missing() {
        let fx = Fixture::new();
        let e = failure(verify(&fx.app, None, None, &mut Audit::default()).await);
        assert!(
            matches!(e, Error::InvalidToken(TokenError::Missing)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_tampered_or_garbage_token_is_invalid_token() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        for token in [tampered(&issued).as_str(), "garbage", ""] {
            let e = failure(verify(&fx.app, Some(token), None, &mut Audit::default()).await);
            assert!(matches!(e, Error::InvalidToken(_)), "{token:?}: {e:?}");
        }
    }

    #[tokio::test]
    async fn a_valid_token_on_a_store_that_is_down_is_unavailable_never_valid() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let down = fx.on(DownStore(Outage::Refuses));
        let e = failure(verify(&down, Some(bearer(&issued)), None, &mut Audit::default()).await);
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_clock_outside_any_plausible_time_is_unavailable_never_valid() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        fx.clock.set(0);
        let e = failure(fx.verify(&issued, None).await);
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    }
}
