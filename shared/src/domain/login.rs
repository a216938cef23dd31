//! Login: trade an API key for the session's bearer token.
//!
//! One read when the session's token is reused (re-signed from the stored
//! claims, so the bytes are the same); one read and one conditional write when
//! a token is minted, plus a read of the key's session times when the login
//! opens a session (the `MAX_SESSIONS_PER_KEY` cap; the embedded store
//! answers most of those from a bound it keeps). Concurrent logins race on
//! the conditional write; a loser reads again and returns the winner's token.
//!
//! The cap is checked, then the session written: logins racing for a key's
//! last free places can each pass the check, so a burst may open a few
//! sessions past the cap (never more than the logins in flight at once; on
//! the embedded store, plus those another process opened on the same file
//! within the same second).

use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::Error;
use crate::domain::api_key::{ApiKey, KeyRecord};
use crate::domain::app::App;
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::{SessionRecord, StoredToken};
use crate::domain::token::{self, Claims};
use crate::domain::usage;
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
        let last_used_at = record.last_used_at;
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
                let held = Scopes::parse(&current.claims.scope).ok();
                // A token holding a scope taken from its key no longer
                // verifies: it is replaced, not defended by a conflict.
                if held.as_ref().is_some_and(|h| h.is_subset(&record.scopes)) {
                    if held.as_ref() != Some(&scope) {
                        return Err(Error::SessionConflict);
                    }
                    if let Some(issued) = reuse(app, current, now).await? {
                        audit.tally.tokens_reused = 1;
                        usage::note(app, key.id(), last_used_at, now).await;
                        return Ok(issued);
                    }
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
            let issued = issue(app, &record.current, now).await?.ok_or_else(|| {
                Error::internal("the key that just signed is no longer in the ring")
            })?;
            audit.tally.tokens_minted = 1;
            usage::note(app, key.id(), last_used_at, now).await;
            return Ok(issued);
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
    let full = app
        .store
        .session_room(
            &record.id,
            now,
            record.sessions_revoked_before,
            app.policy.max_sessions_per_key,
        )
        .await?;
    match full {
        None => Ok(()),
        Some(live) => {
            let oldest = live.earliest_exp.unwrap_or(now);
            Err(Error::TooManySessions(oldest.saturating_sub(now)))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::admin;
    use crate::domain::api_key::ApiKey;
    use crate::domain::testing::{
        DownStore, Fixture, NOW, Outage, bearer, failure, login_request, success,
    };
    use crate::domain::token::TokenError;

    fn capped(max_sessions_per_key: u64) -> Fixture {
        Fixture::with_policy(crate::config::TokenPolicy {
            max_sessions_per_key,
            ..crate::config::TokenPolicy::with_issuer("https://auth.test")
        })
    }

    #[tokio::test]
    async fn a_first_login_mints_a_token_for_all_of_the_keys_scopes() {
        let fx = Fixture::new();
        let key = fx.key("write read").await;
        let issued = success(fx.login(&key, None, None).await);
        assert_eq!(issued.scope, "read write");
        assert_eq!(issued.session_id, "default");
        assert_eq!(issued.expires_in, 7200);
        let verified = success(fx.verify(&issued, Some("read write")).await);
        assert_eq!(verified.claims.sub, key.id().as_str());
        assert_eq!(verified.claims.exp, NOW + 7200);
    }

    #[tokio::test]
    async fn the_same_session_gets_the_same_token_while_it_is_valid() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let first = success(fx.login(&key, None, None).await);
        fx.clock.advance(6000);
        let again = success(fx.login(&key, None, None).await);
        assert_eq!(bearer(&again), bearer(&first));
        assert_eq!(again.expires_in, 1200);
    }

    #[tokio::test]
    async fn inside_the_refresh_window_a_new_token_is_minted_and_the_previous_stays_stored() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let first = success(fx.login(&key, None, None).await);
        fx.clock.advance(7200 - 300);
        let next = success(fx.login(&key, None, None).await);
        assert_ne!(bearer(&next), bearer(&first));
        assert_eq!(next.expires_in, 7200);

        let old = success(fx.verify(&first, None).await).claims;
        let new = success(fx.verify(&next, None).await).claims;
        let sessions = fx.sessions(&key).await;
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].current.claims.jti, new.jti);
        assert_eq!(sessions[0].previous.as_ref().unwrap().claims.jti, old.jti);
        assert_eq!(sessions[0].ttl, NOW + 7200 - 300 + 7200 + 30);
    }

    #[tokio::test]
    async fn a_new_session_id_gets_a_new_token() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let default = success(fx.login(&key, None, None).await);
        let worker = success(fx.login(&key, Some("worker-2"), None).await);
        assert_ne!(bearer(&worker), bearer(&default));
        assert_eq!(worker.session_id, "worker-2");
        assert_eq!(
            success(fx.verify(&worker, None).await).claims.sid,
            "worker-2"
        );
        success(fx.verify(&default, None).await);
    }

    #[tokio::test]
    async fn a_requested_scope_the_key_holds_narrows_the_token() {
        let fx = Fixture::new();
        let key = fx.key("read write").await;
        let issued = success(fx.login(&key, None, Some("read")).await);
        assert_eq!(issued.scope, "read");
        assert!(matches!(
            failure(fx.verify(&issued, Some("write")).await),
            Error::InsufficientScope(_)
        ));
    }

    #[tokio::test]
    async fn a_requested_scope_the_key_lacks_is_invalid_scope() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let e = failure(fx.login(&key, None, Some("read admin")).await);
        assert!(
            matches!(&e, Error::InvalidScope(m) if m.contains("admin")),
            "{e:?}"
        );
        let e = failure(fx.login(&key, None, Some("read  admin")).await);
        assert!(matches!(e, Error::InvalidScope(_)), "{e:?}");
        assert!(fx.sessions(&key).await.is_empty());
    }

    #[tokio::test]
    async fn a_malformed_session_id_is_invalid_request() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let e = failure(fx.login(&key, Some("no spaces"), None).await);
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    }

    #[tokio::test]
    async fn another_scope_on_a_live_session_is_a_session_conflict() {
        let fx = Fixture::new();
        let key = fx.key("read write").await;
        let first = success(fx.login(&key, None, Some("read")).await);
        let e = failure(fx.login(&key, None, None).await);
        assert!(matches!(e, Error::SessionConflict), "{e:?}");
        success(fx.verify(&first, None).await);
    }

    #[tokio::test]
    async fn after_a_key_loses_a_scope_its_session_gets_a_new_token_not_a_conflict() {
        let fx = capped(1);
        let key = fx.key("read write").await;
        let wide = success(fx.login(&key, None, None).await);
        fx.change_key(&key, |r| r.scopes = Scopes::parse("read").unwrap())
            .await;
        let narrow = success(fx.login(&key, None, None).await);
        assert_eq!(narrow.scope, "read");
        success(fx.verify(&narrow, None).await);
        let e = failure(fx.verify(&wide, None).await);
        assert!(
            matches!(e, Error::InvalidToken(TokenError::Revoked)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_revoked_expired_unknown_or_wrong_key_is_invalid_client() {
        let fx = Fixture::new();
        let revoked = fx.key("read").await;
        fx.change_key(&revoked, admin::revoke).await;
        let expiring = fx.key("read").await;
        fx.change_key(&expiring, |r| r.expires_at = Some(NOW + 10))
            .await;
        let unknown = ApiKey::generate().unwrap();
        let stored = fx.key("read").await;
        let wrong_secret = ApiKey::regenerate(stored.id()).unwrap();
        fx.clock.advance(10);
        for key in [&revoked, &expiring, &unknown, &wrong_secret] {
            let e = failure(fx.login(key, None, None).await);
            assert!(matches!(e, Error::InvalidClient), "{key:?}: {e:?}");
        }
        let garbage = LoginRequest {
            api_key: SecretString::from("bauth_not-a-key"),
            session_id: None,
            scope: None,
        };
        let e = failure(login(&fx.app, garbage, &mut Audit::default()).await);
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
    }

    #[tokio::test]
    async fn the_session_cap_gives_the_seconds_until_the_oldest_session_expires() {
        let fx = capped(2);
        let key = fx.key("read").await;
        success(fx.login(&key, Some("a"), None).await);
        fx.clock.advance(100);
        success(fx.login(&key, Some("b"), None).await);
        fx.clock.advance(100);
        let e = failure(fx.login(&key, Some("c"), None).await);
        assert!(matches!(e, Error::TooManySessions(7000)), "{e:?}");
        // A session already open is no new one.
        success(fx.login(&key, Some("a"), None).await);
        fx.clock.advance(7000);
        success(fx.login(&key, Some("c"), None).await);
    }

    #[tokio::test]
    async fn sessions_ended_by_a_revoke_all_leave_the_cap() {
        let fx = capped(1);
        let key = fx.key("read").await;
        success(fx.login(&key, Some("a"), None).await);
        fx.change_key(&key, |r| admin::revoke_sessions(r, NOW * 1000))
            .await;
        success(fx.login(&key, Some("b"), None).await);
    }

    #[tokio::test]
    async fn after_a_revoke_all_in_the_same_millisecond_the_live_token_is_not_reused() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let before = success(fx.login(&key, None, None).await);
        fx.change_key(&key, |r| admin::revoke_sessions(r, NOW * 1000))
            .await;
        let after = success(fx.login(&key, None, None).await);
        assert_ne!(bearer(&after), bearer(&before));
        success(fx.verify(&after, None).await);
        let e = failure(fx.verify(&before, None).await);
        assert!(
            matches!(e, Error::InvalidToken(TokenError::Revoked)),
            "{e:?}"
        );
        let sessions = fx.sessions(&key).await;
        assert!(
            sessions[0].previous.is_none(),
            "a revoked token is no predecessor"
        );
    }

    #[tokio::test]
    async fn a_login_that_loses_the_session_write_hands_out_the_winners_token() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        fx.store.lose_session_writes_to_a_rival(1);
        let issued = success(fx.login(&key, None, None).await);
        assert_eq!(fx.store.rivals_left(), 0, "the rival wrote");
        let claims = success(fx.verify(&issued, None).await).claims;
        let sessions = fx.sessions(&key).await;
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].current.claims.jti, claims.jti);
        assert!(claims.jti.ends_with("-rival"), "{}", claims.jti);
    }

    #[tokio::test]
    async fn a_login_on_a_store_that_is_down_is_unavailable() {
        let fx = Fixture::new();
        let key = ApiKey::generate().unwrap();
        let app = fx.on(DownStore(Outage::Refuses));
        let e = failure(login(&app, login_request(&key, None, None), &mut Audit::default()).await);
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    }
}
