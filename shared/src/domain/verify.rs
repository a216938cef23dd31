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
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::KeyAndSession;
use crate::domain::token::{self, Claims, TokenError};
use crate::telemetry::Audit;

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified {
    /// Its claims.
    pub claims: Claims,
    /// Seconds until it expires.
    pub expires_in: u64,
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
    audit.key_id = Some(claims.sub.clone());
    audit.session_id = Some(claims.sid.clone());
    let (key, session) = owner(&claims)?;
    let state = app.store.key_and_session(&key, &session).await?;
    backed(claims, state, required.as_ref(), app.clock.now()?)
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
    if !live {
        return Err(TokenError::Revoked.into());
    }
    if let Some(required) = required
        && !required.is_subset(&held)
    {
        return Err(Error::InsufficientScope(required.to_string()));
    }
    Ok(Verified {
        expires_in: claims.exp.saturating_sub(now),
        claims,
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
