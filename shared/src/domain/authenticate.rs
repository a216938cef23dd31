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
