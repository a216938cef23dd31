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
use crate::domain::api_key::{KeyId, KeyRecord};
use crate::domain::app::App;
use crate::domain::audit::{Actor, AuditEvent, Origin};
use crate::domain::authenticate::{Requirement, authenticate};
use crate::domain::portal;
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
            let (_, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            revoke_token(app, token.expose_secret(), Some(&record), audit).await
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
            let (key, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let event = AuditEvent::of_session_revoke(
                key.id(),
                record.owner.as_ref(),
                session.as_str(),
                &app.stamp(self_service(&record, audit))?,
            );
            let removed = app
                .store
                .delete_session(key.id(), &session, None, &event)
                .await?;
            audit.tally.revocations = u32::from(removed);
            Ok(Revoked {
                sessions: u64::from(removed),
                api_key: false,
            })
        }
        RevokeRequest::AllSessions { api_key } => {
            let (_, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let stamp = app.stamp(self_service(&record, audit))?;
            let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
                admin::revoke_sessions(r, stamp.now_ms);
                Ok::<_, Error>(())
            })
            .await?;
            audit.tally.revocations = 1;
            Ok(Revoked {
                sessions: admin::sessions_ended(app.store.as_ref(), &updated, stamp.now_ms / 1000)
                    .await?,
                api_key: false,
            })
        }
        RevokeRequest::Key { api_key } => {
            let (_, record) = authenticate(app, &api_key, Requirement::Possession, audit).await?;
            let stamp = app.stamp(self_service(&record, audit))?;
            let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
                admin::revoke(r);
                Ok::<_, Error>(())
            })
            .await?;
            audit.tally.revocations = 1;
            Ok(Revoked {
                sessions: admin::sessions_ended(app.store.as_ref(), &updated, stamp.now_ms / 1000)
                    .await?,
                api_key: true,
            })
        }
    }
}

/// A key revoking for itself, in the request `audit` describes.
fn self_service(record: &KeyRecord, audit: &Audit) -> Origin {
    Origin {
        request_id: audit.request_id.clone(),
        ..Origin::of(Actor::key(&record.id, record.owner.clone()))
    }
}

async fn revoke_token(
    app: &App,
    raw: &str,
    only_of: Option<&KeyRecord>,
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
    if claims.sub == portal::SUBJECT {
        // A portal's sign-out; a client's key never revokes a portal token.
        let ended = only_of.is_none() && portal::end(app, &claims).await?;
        return Ok(Revoked {
            sessions: u64::from(ended),
            api_key: false,
        });
    }
    let (Some(key), Ok(session)) = (KeyId::parse(&claims.sub), SessionId::parse(&claims.sid))
    else {
        return Ok(Revoked::default());
    };
    if only_of.is_some_and(|client| client.id != key) {
        // Not this client's token: refuse silently, revealing nothing about it.
        return Ok(Revoked::default());
    }
    // Only while the session still holds this token: an old token must not
    // end a session that has since moved on to a new one.
    // The event names the key's owner, so that owner's trail shows it: a
    // client has just been read with its key; a bare token costs one read.
    let owner = match only_of {
        Some(client) => client.owner.clone(),
        None => app.store.key(&key).await?.and_then(|r| r.owner),
    };
    let origin = Origin {
        request_id: audit.request_id.clone(),
        ..Origin::of(Actor::key(&key, owner.clone()))
    };
    let event =
        AuditEvent::of_session_revoke(&key, owner.as_ref(), session.as_str(), &app.stamp(origin)?);
    let removed = app
        .store
        .delete_session(&key, &session, Some(&claims.jti), &event)
        .await?;
    audit.tally.revocations = u32::from(removed);
    Ok(Revoked {
        sessions: u64::from(removed),
        api_key: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::ApiKey;
    use crate::domain::audit::Action;
    use crate::domain::login::Issued;
    use crate::domain::owner::Owner;
    use crate::domain::store::Store;
    use crate::domain::testing::{DownStore, Fixture, Outage, bearer, failure, success, tampered};
    use crate::domain::token::TokenError;

    fn token(issued: &Issued) -> SecretString {
        SecretString::from(bearer(issued).to_owned())
    }

    fn ended(sessions: u64) -> Revoked {
        Revoked {
            sessions,
            api_key: false,
        }
    }

    async fn assert_revoked(fx: &Fixture, issued: &Issued) {
        let e = failure(fx.verify(issued, None).await);
        assert!(
            matches!(e, Error::InvalidToken(TokenError::Revoked)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn revoking_a_token_ends_its_session_and_no_other() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let other = success(fx.login(&key, Some("other"), None).await);
        let revoked = success(fx.revoke(RevokeRequest::Token(token(&issued))).await);
        assert_eq!(revoked, ended(1));
        assert_revoked(&fx, &issued).await;
        success(fx.verify(&other, None).await);
        let next = success(fx.login(&key, None, None).await);
        assert_ne!(bearer(&next), bearer(&issued));
    }

    #[tokio::test]
    async fn a_token_revoke_names_the_keys_owner_by_either_route_so_its_trail_shows_it() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let acme = Owner::parse("acme").unwrap();
        fx.change_key(&key, |r| r.owner = Some(acme.clone())).await;
        let bare = success(fx.login(&key, None, None).await);
        let client = success(fx.login(&key, Some("other"), None).await);
        success(fx.revoke(RevokeRequest::Token(token(&bare))).await);
        let own = RevokeRequest::ClientToken {
            api_key: key.expose(),
            token: token(&client),
        };
        success(fx.revoke(own).await);
        let trail = fx.store.events_page(Some(&acme), None, 10).await.unwrap();
        // The test clock stands still: both events share a millisecond.
        let mut revokes: Vec<_> = trail
            .iter()
            .filter(|e| e.action == Action::SessionRevoked)
            .map(|e| (e.session_id.as_deref(), e.actor.owner.as_ref()))
            .collect();
        revokes.sort();
        assert_eq!(
            revokes,
            [(Some("default"), Some(&acme)), (Some("other"), Some(&acme))]
        );
    }

    #[tokio::test]
    async fn revoking_a_forged_garbage_unknown_or_already_revoked_token_succeeds_and_ends_nothing()
    {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        success(fx.revoke(RevokeRequest::Token(token(&issued))).await);
        let stranger = Fixture::new();
        let stranger_key = stranger.key("read").await;
        let unknown = success(stranger.login(&stranger_key, None, None).await);
        let live = success(fx.login(&key, Some("live"), None).await);
        let forged = SecretString::from(tampered(&live));
        for raw in [forged, "garbage".into(), token(&unknown), token(&issued)] {
            let revoked = success(fx.revoke(RevokeRequest::Token(raw)).await);
            assert_eq!(revoked, Revoked::default());
        }
        success(fx.verify(&live, None).await);
    }

    #[tokio::test]
    async fn an_old_token_does_not_end_the_session_that_has_moved_on() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let old = success(fx.login(&key, None, None).await);
        let by_session = RevokeRequest::Session {
            api_key: key.expose(),
            session_id: None,
        };
        success(fx.revoke(by_session).await);
        let new = success(fx.login(&key, None, None).await);
        let revoked = success(fx.revoke(RevokeRequest::Token(token(&old))).await);
        assert_eq!(revoked, ended(0));
        success(fx.verify(&new, None).await);
    }

    #[tokio::test]
    async fn revoking_the_token_a_refresh_replaced_ends_the_session() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let old = success(fx.login(&key, None, None).await);
        fx.clock.advance(7200 - 300);
        let new = success(fx.login(&key, None, None).await);
        let revoked = success(fx.revoke(RevokeRequest::Token(token(&old))).await);
        assert_eq!(revoked, ended(1));
        assert_revoked(&fx, &new).await;
    }

    #[tokio::test]
    async fn revoking_a_named_session_ends_it_once_and_leaves_the_others() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let a = success(fx.login(&key, Some("a"), None).await);
        let b = success(fx.login(&key, Some("b"), None).await);
        for expected in [1, 0] {
            let request = RevokeRequest::Session {
                api_key: key.expose(),
                session_id: Some("a".into()),
            };
            assert_eq!(success(fx.revoke(request).await), ended(expected));
        }
        assert_revoked(&fx, &a).await;
        success(fx.verify(&b, None).await);
    }

    #[tokio::test]
    async fn revoking_a_session_with_a_bad_session_id_or_another_secret_is_refused() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let malformed = RevokeRequest::Session {
            api_key: key.expose(),
            session_id: Some("a b".into()),
        };
        let e = failure(fx.revoke(malformed).await);
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
        let impostor = RevokeRequest::Session {
            api_key: ApiKey::regenerate(key.id()).unwrap().expose(),
            session_id: None,
        };
        let e = failure(fx.revoke(impostor).await);
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
        success(fx.verify(&issued, None).await);
    }

    #[tokio::test]
    async fn revoking_all_sessions_ends_every_live_one_and_a_later_login_works() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let a = success(fx.login(&key, Some("a"), None).await);
        let b = success(fx.login(&key, Some("b"), None).await);
        let all = RevokeRequest::AllSessions {
            api_key: key.expose(),
        };
        assert_eq!(success(fx.revoke(all).await), ended(2));
        assert_revoked(&fx, &a).await;
        assert_revoked(&fx, &b).await;
        let c = success(fx.login(&key, Some("c"), None).await);
        success(fx.verify(&c, None).await);
        let again = success(fx.login(&key, Some("a"), None).await);
        assert_ne!(bearer(&again), bearer(&a));
        success(fx.verify(&again, None).await);
    }

    #[tokio::test]
    async fn revoking_the_key_ends_its_sessions_and_later_logins_are_invalid_client() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let a = success(fx.login(&key, Some("a"), None).await);
        let b = success(fx.login(&key, Some("b"), None).await);
        let request = || RevokeRequest::Key {
            api_key: key.expose(),
        };
        let expected = Revoked {
            sessions: 2,
            api_key: true,
        };
        assert_eq!(success(fx.revoke(request()).await), expected);
        assert_revoked(&fx, &a).await;
        assert_revoked(&fx, &b).await;
        let e = failure(fx.login(&key, None, None).await);
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
        // Repeating it is harmless, and a revoked key may still take access away.
        let again = success(fx.revoke(request()).await);
        assert_eq!((again.sessions, again.api_key), (0, true));
        let all = RevokeRequest::AllSessions {
            api_key: key.expose(),
        };
        assert_eq!(success(fx.revoke(all).await), ended(0));
    }

    #[tokio::test]
    async fn a_client_revokes_its_own_token_but_another_keys_token_is_left_alone() {
        let fx = Fixture::new();
        let owner = fx.key("read").await;
        let client = fx.key("read").await;
        let issued = success(fx.login(&owner, None, None).await);
        let foreign = RevokeRequest::ClientToken {
            api_key: client.expose(),
            token: token(&issued),
        };
        assert_eq!(success(fx.revoke(foreign).await), Revoked::default());
        success(fx.verify(&issued, None).await);
        let own = RevokeRequest::ClientToken {
            api_key: owner.expose(),
            token: token(&issued),
        };
        assert_eq!(success(fx.revoke(own).await), ended(1));
        assert_revoked(&fx, &issued).await;
    }

    #[tokio::test]
    async fn a_client_with_an_unknown_key_is_invalid_client_even_for_its_own_token() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let request = RevokeRequest::ClientToken {
            api_key: ApiKey::generate().unwrap().expose(),
            token: token(&issued),
        };
        let e = failure(fx.revoke(request).await);
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
        success(fx.verify(&issued, None).await);
    }

    #[tokio::test]
    async fn every_revoke_on_a_store_that_is_down_is_unavailable() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let issued = success(fx.login(&key, None, None).await);
        let down = fx.on(DownStore(Outage::Refuses));
        let requests = [
            RevokeRequest::Token(token(&issued)),
            RevokeRequest::ClientToken {
                api_key: key.expose(),
                token: token(&issued),
            },
            RevokeRequest::Session {
                api_key: key.expose(),
                session_id: None,
            },
            RevokeRequest::AllSessions {
                api_key: key.expose(),
            },
            RevokeRequest::Key {
                api_key: key.expose(),
            },
        ];
        for request in requests {
            let what = format!("{request:?}");
            let e = failure(revoke(&down, request, &mut Audit::default()).await);
            assert!(matches!(e, Error::Unavailable(_)), "{what}: {e:?}");
        }
    }
}
