//! Login: trade an API key for the session's bearer token.
//!
//! One read when the session's token is reused (re-signed from the stored
//! claims, so the bytes are the same); one read and one conditional write when
//! a token is minted, plus a read of the key's session times when the login
//! opens a session (the `MAX_SESSIONS_PER_KEY` cap). Concurrent logins race on
//! the conditional write; a loser reads again and returns the winner's token.
//!
//! The cap is checked, then the session written: logins racing for a key's
//! last free places can each pass the check, so a burst may open a few
//! sessions past the cap (never more than the logins in flight at once).

use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::Error;
use crate::domain::api_key::{ApiKey, KeyRecord};
use crate::domain::app::App;
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::{SessionRecord, StoredToken};
use crate::domain::token::{self, Claims};
use crate::telemetry::Audit;

/// Reads and conditional writes before a contended login gives up (503).
const ATTEMPTS: usize = 5;

/// What the caller asked for.
#[derive(Debug)]
pub struct LoginRequest {
    /// The API key as sent.
    pub api_key: SecretString,
    /// The session; `None` is the default session.
    pub session_id: Option<String>,
    /// Requested scopes; `None` is all of the key's.
    pub scope: Option<String>,
}

/// A token handed out.
pub struct Issued {
    /// The JWT.
    pub access_token: SecretString,
    /// Seconds it has left.
    pub expires_in: u64,
    /// Its scopes.
    pub scope: String,
    /// Its session.
    pub session_id: String,
}

/// Runs a login.
pub async fn login(app: &App, request: LoginRequest, audit: &mut Audit) -> Result<Issued, Error> {
    use secrecy::ExposeSecret;
    let key = ApiKey::parse(request.api_key.expose_secret()).map_err(|_| Error::InvalidClient)?;
    audit.key_id = Some(key.id().to_string());
    let session = match &request.session_id {
        Some(s) => SessionId::parse(s).map_err(|e| Error::InvalidRequest(e.to_string()))?,
        None => SessionId::default_session(),
    };
    audit.session_id = Some(session.to_string());
    let requested = request
        .scope
        .as_deref()
        .map(Scopes::parse)
        .transpose()
        .map_err(|e| Error::InvalidScope(e.to_string()))?;

    for _ in 0..ATTEMPTS {
        let now_ms = app.clock.now_ms()?;
        let now = now_ms / 1000;
        let (record, stored) = app.store.key_and_session(key.id(), &session).await?;
        let record = record
            .filter(|r| r.authenticates(&key, now))
            .ok_or(Error::InvalidClient)?;
        let scope = match &requested {
            None => record.scopes.clone(),
            Some(s) if s.is_subset(&record.scopes) => s.clone(),
            Some(s) => {
                return Err(Error::InvalidScope(format!(
                    "the API key does not hold the scope: {}",
                    s.missing_from(&record.scopes)
                )));
            }
        };
        // A token minted before a revoke-all is as good as gone.
        let live = stored
            .as_ref()
            .map(|s| &s.current)
            .filter(|t| now < t.claims.exp && !record.revoked_session_minted_at(t.minted_ms));
        match live {
            Some(current) => {
                if Scopes::parse(&current.claims.scope).ok().as_ref() != Some(&scope) {
                    return Err(Error::SessionConflict);
                }
                if let Some(issued) = reuse(app, current, now).await? {
                    return Ok(issued);
                }
            }
            None => check_session_cap(app, &record, now).await?,
        }
        // Minted after the cutoff even when this host's clock lags the one
        // that wrote it, so a login right after a revoke-all verifies.
        let minted_ms = now_ms.max(record.sessions_revoked_before.saturating_add(1));
        let minted = mint(app, &key, &session, &scope, now, minted_ms).await?;
        let record = SessionRecord {
            ttl: live
                .map_or(minted.claims.exp, |prev| {
                    prev.claims.exp.max(minted.claims.exp)
                })
                .saturating_add(app.policy.leeway_seconds),
            current: minted,
            previous: live.cloned(),
        };
        let replaces = stored.as_ref().map(|s| s.current.claims.jti.as_str());
        if app.store.put_session(&record, replaces).await? {
            return issue(app, &record.current, now).await?.ok_or_else(|| {
                Error::internal("the key that just signed is no longer in the ring")
            });
        }
        // Another login wrote first: read again and hand out its token.
    }
    Err(Error::unavailable("session write contended; retry"))
}

/// The live token again, unless it is inside the refresh window or its
/// signing key has left the ring (then the caller mints a successor).
async fn reuse(app: &App, current: &StoredToken, now: u64) -> Result<Option<Issued>, Error> {
    let left = current.claims.exp.saturating_sub(now);
    let window = app.policy.refresh_window_seconds;
    if window != 0 && left <= window {
        return Ok(None);
    }
    issue(app, current, now).await
}

/// Signs `token` with the key it names; `None` when that key is gone.
async fn issue(app: &App, token: &StoredToken, now: u64) -> Result<Option<Issued>, Error> {
    let Some(key) = app.keys.find(&token.kid).await? else {
        return Ok(None);
    };
    let jwt = token::sign(&token.claims, &key).map_err(Error::internal)?;
    Ok(Some(Issued {
        access_token: SecretString::from(jwt),
        expires_in: token.claims.exp.saturating_sub(now),
        scope: token.claims.scope.clone(),
        session_id: token.claims.sid.clone(),
    }))
}

/// Refuses to open one more session for a key that holds as many live ones
/// as it may; the answer says when the oldest of them expires.
async fn check_session_cap(app: &App, record: &KeyRecord, now: u64) -> Result<(), Error> {
    let live: Vec<u64> = app
        .store
        .unexpired_sessions(&record.id, now)
        .await?
        .into_iter()
        .filter(|s| !record.revoked_session_minted_at(s.minted_ms))
        .map(|s| s.exp)
        .collect();
    if (live.len() as u64) < app.policy.max_sessions_per_key {
        return Ok(());
    }
    let oldest = live.into_iter().min().unwrap_or(now);
    Err(Error::TooManySessions(oldest.saturating_sub(now)))
}

async fn mint(
    app: &App,
    key: &ApiKey,
    session: &SessionId,
    scope: &Scopes,
    now: u64,
    minted_ms: u64,
) -> Result<StoredToken, Error> {
    let signing = app.keys.keys().await?.current;
    Ok(StoredToken {
        claims: Claims {
            iss: app.policy.issuer.clone(),
            aud: app.policy.audience.clone(),
            sub: key.id().to_string(),
            sid: session.to_string(),
            jti: Uuid::new_v4().simple().to_string(),
            iat: now,
            nbf: None,
            exp: now.saturating_add(app.policy.ttl_seconds),
            scope: scope.to_string(),
        },
        kid: signing.kid().to_owned(),
        minted_ms,
    })
}
