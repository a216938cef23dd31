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
    Active(Verified),
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
        Ok(v) => Ok(Introspection::Active(v)),
        Err(Error::InvalidToken(_)) => Ok(Introspection::Inactive),
        Err(e) => Err(e),
    }
}
