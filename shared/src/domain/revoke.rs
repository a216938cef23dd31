//! Revoke: a token's session, a named session, every session of a key, or the key.
//!
//! Revoking a session deletes its item, so neither its current token nor its
//! predecessor verifies again and the next login mints a new one. Revoking
//! every session is one write of the key's `sessions_revoked_before`, which
//! every verify reads; revoking the key marks it revoked. Both are versioned
//! key writes ([`crate::domain::admin`]), so no concurrent write undoes them; every
//! revoke is durable before it is acknowledged. Repeating a revoke is
//! harmless. A key whose secret matches may revoke its own sessions even when
//! it is already revoked or expired: that only ever takes access away.

use secrecy::{ExposeSecret, SecretString};

use crate::domain::Error;
use crate::domain::admin;
use crate::domain::api_key::KeyId;
use crate::domain::app::App;
use crate::domain::authenticate::{Requirement, authenticate};
use crate::domain::session_id::SessionId;
use crate::domain::verify::authentic_claims;
use crate::telemetry::Audit;

/// What to revoke.
#[derive(Debug)]
pub enum RevokeRequest {
    /// The session holding this token (RFC 7009: unknown tokens are fine).
    Token(SecretString),
    /// One session of a key.
    Session {
        /// The key, proving ownership.
        api_key: SecretString,
        /// The session; `None` is the default session.
        session_id: Option<String>,
    },
    /// Every session of a key.
    AllSessions {
        /// The key, proving ownership.
        api_key: SecretString,
    },
    /// The key itself, and with it every session.
    Key {
        /// The key to revoke.
        api_key: SecretString,
    },
    /// A token's session, for an OAuth2 client revoking one of its own
    /// tokens (RFC 7009): a token of another client is left alone.
    ClientToken {
        /// The client's API key.
        api_key: SecretString,
        /// The token.
        token: SecretString,
    },
}

/// What a revoke did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Sessions removed.
    pub sessions: u64,
    /// Whether the API key was revoked.
    pub api_key: bool,
}

/// Runs a revoke.
pub async fn revoke(
    app: &App,
    request: RevokeRequest,
    audit: &mut Audit,
) -> Result<Revoked, Error> {
    match request {
        RevokeRequest::Token(token) => revoke_token(app, token.expose_secret(), None, audit).await,
        RevokeRequest::ClientToken { api_key, token } => {
            let (key, _) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            revoke_token(app, token.expose_secret(), Some(key.id()), audit).await
        }
        RevokeRequest::Session {
            api_key,
            session_id,
        } => {
            let session = match session_id {
                Some(s) => {
                    SessionId::parse(&s).map_err(|e| Error::InvalidRequest(e.to_string()))?
                }
                None => SessionId::default_session(),
            };
            audit.session_id = Some(session.to_string());
            let (key, _) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let removed = app.store.delete_session(key.id(), &session, None).await?;
            Ok(Revoked {
                sessions: u64::from(removed),
                api_key: false,
            })
        }
        RevokeRequest::AllSessions { api_key } => {
            let (_, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let now_ms = app.clock.now_ms()?;
            let updated = admin::update_from(app.store.as_ref(), record, |r| {
                admin::revoke_sessions(r, now_ms);
                Ok::<_, Error>(())
            })
            .await?;
            Ok(Revoked {
                sessions: admin::sessions_ended(app.store.as_ref(), &updated, now_ms / 1000)
                    .await?,
                api_key: false,
            })
        }
        RevokeRequest::Key { api_key } => {
            let (_, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let updated = admin::update_from(app.store.as_ref(), record, |r| {
                admin::revoke(r);
                Ok::<_, Error>(())
            })
            .await?;
            Ok(Revoked {
                sessions: admin::sessions_ended(app.store.as_ref(), &updated, app.clock.now()?)
                    .await?,
                api_key: true,
            })
        }
    }
}

async fn revoke_token(
    app: &App,
    raw: &str,
    only_of: Option<&KeyId>,
    audit: &mut Audit,
) -> Result<Revoked, Error> {
    let claims = match authentic_claims(app, raw).await {
        Ok(claims) => claims,
        // Forged, expired or garbage: nothing of ours to revoke (RFC 7009 §2.2).
        Err(Error::InvalidToken(_)) => return Ok(Revoked::default()),
        Err(e) => return Err(e),
    };
    audit.key_id = Some(claims.sub.clone());
    audit.session_id = Some(claims.sid.clone());
    let (Some(key), Ok(session)) = (KeyId::parse(&claims.sub), SessionId::parse(&claims.sid))
    else {
        return Ok(Revoked::default());
    };
    if only_of.is_some_and(|owner| owner != &key) {
        // Not this client's token: refuse silently, revealing nothing about it.
        return Ok(Revoked::default());
    }
    // Only while the session still holds this token: an old token must not
    // end a session that has since moved on to a new one.
    let removed = app
        .store
        .delete_session(&key, &session, Some(&claims.jti))
        .await?;
    Ok(Revoked {
        sessions: u64::from(removed),
        api_key: false,
    })
}
