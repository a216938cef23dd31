//! Who is calling: an API key holder proving their key, as a login, a
//! revoke or an OAuth2 client does (the HTTP adapter reads the key from a
//! field or from client credentials).

use secrecy::{ExposeSecret, SecretString};

use crate::domain::Error;
use crate::domain::api_key::{ApiKey, KeyRecord};
use crate::domain::app::App;
use crate::telemetry::Audit;

/// How much a key must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// The secret matches and the key is active and unexpired (to get or check tokens).
    Usable,
    /// The secret matches, whatever the key's status: enough to take access
    /// away (revoke), never to gain it.
    Possession,
}

/// The key and its record, when `api_key` meets `requirement`; one read.
pub async fn authenticate(
    app: &App,
    api_key: &SecretString,
    requirement: Requirement,
    audit: &mut Audit,
) -> Result<(ApiKey, KeyRecord), Error> {
    let key = caller(api_key, audit)?;
    let record = app.store.key(key.id()).await?;
    let record = admit(record, &key, requirement, app.clock.now()?)?;
    Ok((key, record))
}

/// The well-formed key in `api_key`, before any read; its id goes in the log.
pub fn caller(api_key: &SecretString, audit: &mut Audit) -> Result<ApiKey, Error> {
    let key = ApiKey::parse(api_key.expose_secret()).map_err(|_| Error::InvalidClient)?;
    audit.key_id = Some(key.id().to_string());
    Ok(key)
}

/// The stored `record` of `key`, when `key` meets `requirement` against it.
pub fn admit(
    record: Option<KeyRecord>,
    key: &ApiKey,
    requirement: Requirement,
    now: u64,
) -> Result<KeyRecord, Error> {
    record
        .filter(|r| match requirement {
            Requirement::Usable => r.authenticates(key, now),
            Requirement::Possession => r.proves_possession(key, now),
        })
        .ok_or(Error::InvalidClient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::admin;
    use crate::domain::testing::{DownStore, Fixture, NOW, Outage, failure};

    async fn authenticated(
        app: &App,
        key: &ApiKey,
        requirement: Requirement,
    ) -> Result<KeyRecord, Error> {
        let (parsed, record) =
            authenticate(app, &key.expose(), requirement, &mut Audit::default()).await?;
        assert_eq!(parsed.id(), key.id());
        Ok(record)
    }

    #[tokio::test]
    async fn an_active_key_is_usable_and_possessed() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        for requirement in [Requirement::Usable, Requirement::Possession] {
            let record = authenticated(&fx.app, &key, requirement).await.unwrap();
            assert_eq!(&record.id, key.id());
        }
    }

    #[tokio::test]
    async fn a_revoked_or_expired_key_is_possessed_but_not_usable() {
        let fx = Fixture::new();
        let revoked = fx.key("read").await;
        fx.change_key(&revoked, admin::revoke).await;
        let expired = fx.key("read").await;
        fx.change_key(&expired, |r| r.expires_at = Some(NOW)).await;
        for key in [&revoked, &expired] {
            let e = failure(authenticated(&fx.app, key, Requirement::Usable).await);
            assert!(matches!(e, Error::InvalidClient), "{key:?}: {e:?}");
            authenticated(&fx.app, key, Requirement::Possession)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_wrong_secret_an_unknown_key_or_garbage_proves_nothing() {
        let fx = Fixture::new();
        let stored = fx.key("read").await;
        let wrong = ApiKey::regenerate(stored.id()).unwrap();
        let unknown = ApiKey::generate().unwrap();
        for requirement in [Requirement::Usable, Requirement::Possession] {
            for key in [&wrong, &unknown] {
                let e = failure(authenticated(&fx.app, key, requirement).await);
                assert!(matches!(e, Error::InvalidClient), "{key:?}: {e:?}");
            }
            let garbage = SecretString::from("garbage");
            let e =
                failure(authenticate(&fx.app, &garbage, requirement, &mut Audit::default()).await);
            assert!(matches!(e, Error::InvalidClient), "{e:?}");
        }
    }

    #[tokio::test]
    async fn a_rotated_out_secret_works_only_during_its_grace_period() {
        let fx = Fixture::new();
        let old = fx.key("read").await;
        let new = ApiKey::regenerate(old.id()).unwrap();
        fx.change_key(&old, |r| r.rotate(&new, NOW, 60)).await;
        authenticated(&fx.app, &old, Requirement::Usable)
            .await
            .unwrap();
        fx.clock.advance(60);
        let e = failure(authenticated(&fx.app, &old, Requirement::Possession).await);
        assert!(matches!(e, Error::InvalidClient), "{e:?}");
        authenticated(&fx.app, &new, Requirement::Usable)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn authenticating_on_a_store_that_is_down_is_unavailable() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let down = fx.on(DownStore(Outage::Refuses));
        for requirement in [Requirement::Usable, Requirement::Possession] {
            let e = failure(authenticated(&down, &key, requirement).await);
            assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        }
    }
}
