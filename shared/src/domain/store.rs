//! The store port: the narrow trait the use cases keep keys and sessions
//! through, and the records it holds. Its backends are
//! [`crate::aws::dynamodb`] and [`crate::local::sqlite`].
//!
//! The logic depends only on [`Store`]. Backends hold records as they are
//! given; they never decide whether something has expired. Every reader
//! checks time itself, because expired items may still be read for up to two
//! days after their TTL (and an emulator may never delete them).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::api_key::{KeyId, KeyRecord};
use crate::domain::audit::AuditEvent;
use crate::domain::owner::Owner;
use crate::domain::portal::PortalLink;
use crate::domain::session_id::SessionId;
use crate::domain::token::Claims;

/// A token as a session stores it: everything needed to re-sign the same bytes.
/// The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// The signed claims.
    pub claims: Claims,
    /// The signing key id.
    pub kid: String,
    /// When it was minted, in Unix milliseconds: compared with the key's
    /// `sessions_revoked_before` (a token's `iat` is whole seconds, too
    /// coarse for a login in the same second as a revoke-all). Sessions
    /// stored before this field existed read as 0, revoked by any revoke-all.
    #[serde(default)]
    pub minted_ms: u64,
}

impl StoredToken {
    /// Whether `claims` are this token's: same jti, scope and expiry.
    pub fn is(&self, claims: &Claims) -> bool {
        self.claims.jti == claims.jti
            && self.claims.scope == claims.scope
            && self.claims.exp == claims.exp
    }
}

/// A session: its current token and the one it replaced, which keeps
/// verifying until its own expiry so that early refreshes break nothing.
///
/// Its serde form is what both stores keep, the same in each: flat fields
/// (`sub`, `sid`, `jti`, `iat`, `exp`, `kid`, `minted_ms`, `scope`, `iss`,
/// `aud`, the predecessor's as `prev_*`, and `ttl`), a DynamoDB item's
/// attributes beside its keys and an embedded store row's `record`. The
/// names are those items have always had, so older rows still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "flat::Session", from = "flat::Session")]
pub struct SessionRecord {
    /// The token login hands out now.
    pub current: StoredToken,
    /// The token replaced by a refresh, while it may still be live.
    pub previous: Option<StoredToken>,
    /// When the item may be deleted by TTL: the latest expiry plus leeway.
    pub ttl: u64,
}

impl SessionRecord {
    /// The key the session belongs to (`sub`).
    pub fn key_id(&self) -> &str {
        &self.current.claims.sub
    }

    /// The session id (`sid`).
    pub fn session_id(&self) -> &str {
        &self.current.claims.sid
    }

    /// Whether the session holds a token with these claims: its current one
    /// or its predecessor. Callers check the token's own `exp` first, which is
    /// also the predecessor's expiry, so a predecessor only counts until then.
    pub fn holds(&self, claims: &Claims) -> bool {
        self.holding(claims).is_some()
    }

    /// The stored token with these claims: the current one or its predecessor.
    pub fn holding(&self, claims: &Claims) -> Option<&StoredToken> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|t| t.is(claims))
    }
}

/// The flat serde form of a [`SessionRecord`].
mod flat {
    use serde::{Deserialize, Serialize};

    use super::{SessionRecord, StoredToken};
    use crate::domain::token::Claims;

    #[derive(Serialize, Deserialize)]
    pub struct Session {
        sub: String,
        sid: String,
        jti: String,
        iat: u64,
        exp: u64,
        kid: String,
        #[serde(default)]
        minted_ms: u64,
        scope: String,
        iss: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aud: Option<String>,
        #[serde(flatten)]
        previous: Option<Previous>,
        ttl: u64,
    }

    /// The predecessor's fields; its `sub` and `sid` are the session's.
    #[derive(Serialize, Deserialize)]
    struct Previous {
        prev_jti: String,
        prev_iat: u64,
        prev_exp: u64,
        prev_kid: String,
        #[serde(default)]
        prev_minted_ms: u64,
        prev_scope: String,
        prev_iss: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_aud: Option<String>,
    }

    impl From<SessionRecord> for Session {
        fn from(r: SessionRecord) -> Self {
            let StoredToken {
                claims: c,
                kid,
                minted_ms,
            } = r.current;
            Self {
                previous: r.previous.map(|p| Previous {
                    prev_jti: p.claims.jti,
                    prev_iat: p.claims.iat,
                    prev_exp: p.claims.exp,
                    prev_kid: p.kid,
                    prev_minted_ms: p.minted_ms,
                    prev_scope: p.claims.scope,
                    prev_iss: p.claims.iss,
                    prev_aud: p.claims.aud,
                }),
                sub: c.sub,
                sid: c.sid,
                jti: c.jti,
                iat: c.iat,
                exp: c.exp,
                kid,
                minted_ms,
                scope: c.scope,
                iss: c.iss,
                aud: c.aud,
                ttl: r.ttl,
            }
        }
    }

    impl From<Session> for SessionRecord {
        fn from(f: Session) -> Self {
            let previous = f.previous.map(|p| StoredToken {
                claims: Claims {
                    iss: p.prev_iss,
                    aud: p.prev_aud,
                    sub: f.sub.clone(),
                    sid: f.sid.clone(),
                    jti: p.prev_jti,
                    iat: p.prev_iat,
                    nbf: None,
                    exp: p.prev_exp,
                    scope: p.prev_scope,
                },
                kid: p.prev_kid,
                minted_ms: p.prev_minted_ms,
            });
            Self {
                current: StoredToken {
                    claims: Claims {
                        iss: f.iss,
                        aud: f.aud,
                        sub: f.sub,
                        sid: f.sid,
                        jti: f.jti,
                        iat: f.iat,
                        nbf: None,
                        exp: f.exp,
                        scope: f.scope,
                    },
                    kid: f.kid,
                    minted_ms: f.minted_ms,
                },
                previous,
                ttl: f.ttl,
            }
        }
    }
}

/// The times of a stored session, all that counting a key's sessions needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// Expiry of its current token, Unix seconds.
    pub exp: u64,
    /// When its current token was minted, Unix milliseconds.
    pub minted_ms: u64,
}

/// A key's live sessions, counted: see [`Store::live_sessions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveSessions {
    /// How many.
    pub count: u64,
    /// The earliest expiry among them, Unix seconds; `None` when there are none.
    pub earliest_exp: Option<u64>,
}

impl LiveSessions {
    /// The count and earliest expiry of `times`.
    pub fn of<'a>(times: impl Iterator<Item = &'a SessionTimes>) -> Self {
        times.fold(Self::default(), |live, s| Self {
            count: live.count + 1,
            earliest_exp: Some(live.earliest_exp.map_or(s.exp, |e| e.min(s.exp))),
        })
    }
}

/// Where a key sits in the newest-first listing of [`Store::keys_page`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPosition {
    /// Its creation time, Unix seconds.
    pub created_at: u64,
    /// Its id, which orders keys made in the same second.
    pub id: KeyId,
}

impl KeyPosition {
    /// The position of `record`.
    pub fn of(record: &KeyRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id.clone(),
        }
    }
}

/// A backend failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Unreachable, throttled or refusing after retries (503).
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An item that does not decode, or a request we built wrong: a bug or a hand edit (500).
    #[error("store internal error: {0}")]
    Internal(String),
}

/// A key and one of its sessions, each as stored (or absent).
pub type KeyAndSession = (Option<KeyRecord>, Option<SessionRecord>);

/// What the logic needs of a backend.
#[async_trait]
pub trait Store: Send + Sync {
    /// The key and one of its sessions, in one consistent round trip.
    async fn key_and_session(
        &self,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<KeyAndSession, StoreError>;

    /// What introspection needs, in one consistent round trip: the caller's
    /// key, and the token's key and session as [`Store::key_and_session`]
    /// reads them. `caller` may be `key`.
    async fn caller_key_and_session(
        &self,
        caller: &KeyId,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError>;

    /// Writes `session` if the stored session's current jti is `replaces`
    /// (or, for `None`, if there is no stored session). Returns whether it
    /// wrote: `false` means another writer got there first.
    async fn put_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Deletes a session; with `holding`, only if its current or previous
    /// token has that jti. Stores `event` in the same transaction: both or
    /// neither. Returns whether a session was deleted.
    async fn delete_session(
        &self,
        key: &KeyId,
        session: &SessionId,
        holding: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Every stored session of a key, expired ones included.
    async fn list_sessions(&self, key: &KeyId) -> Result<Vec<SessionRecord>, StoreError>;

    /// The times of a key's sessions whose current token expires after
    /// `now` (seconds), without the rest of each item: for the session cap
    /// and for counting what a revoke-all ended.
    async fn unexpired_sessions(
        &self,
        key: &KeyId,
        now: u64,
    ) -> Result<Vec<SessionTimes>, StoreError>;

    /// How many sessions of a key are live at `now` (seconds), their
    /// current token unexpired and minted after `cut_off_ms` (the key's
    /// revoke-all; 0 for none), and the earliest of their expiries: all the
    /// session cap needs, so a store may count without reading each session.
    async fn live_sessions(
        &self,
        key: &KeyId,
        now: u64,
        cut_off_ms: u64,
    ) -> Result<LiveSessions, StoreError> {
        let times = self.unexpired_sessions(key, now).await?;
        Ok(LiveSessions::of(
            times
                .iter()
                .filter(|s| cut_off_ms == 0 || s.minted_ms > cut_off_ms),
        ))
    }

    /// Whether a key may open one more session under a cap of `cap` live
    /// sessions, counted as [`Self::live_sessions`] counts them: `None` if it
    /// may, else the count that reached the cap. A store may answer `None`
    /// from an upper bound it keeps instead of counting.
    async fn session_room(
        &self,
        key: &KeyId,
        now: u64,
        cut_off_ms: u64,
        cap: u64,
    ) -> Result<Option<LiveSessions>, StoreError> {
        let live = self.live_sessions(key, now, cut_off_ms).await?;
        Ok((live.count >= cap).then_some(live))
    }

    /// A key alone.
    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Stores a new key at version 1 and its `event`, in one transaction;
    /// `false` (and neither written) if the id is taken.
    async fn create_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError>;

    /// Overwrites a key with `record` at version `record.version + 1`, only
    /// if the stored key is still at `record.version` (the version it was
    /// read at), and stores `event` in the same transaction; `false` (and
    /// neither written) if another write came first or there is no key.
    /// Callers go through [`crate::domain::admin::update`], which retries.
    async fn save_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError>;

    /// Events of every key, or of `owner`'s keys, newest first: at most
    /// `limit`, older than the event id `before` when given. An index read,
    /// like [`Store::keys_page`].
    async fn events_page(
        &self,
        owner: Option<&Owner>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The events of `key`, newest first: at most `limit`, older than the
    /// event id `before` when given. Expired events may be among them.
    async fn key_events(
        &self,
        key: &KeyId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Sets the key's `last_used_at` to `at` when it is unset or before
    /// `stale_before`, leaving every other field and its version as they
    /// are; `false` when nothing was written (no key, or a fresher time).
    async fn touch_key(&self, key: &KeyId, at: u64, stale_before: u64) -> Result<bool, StoreError>;

    /// Stores a new portal link and its `event`, in one transaction.
    async fn create_portal_link(
        &self,
        link: &PortalLink,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Stores `event`, of a change made outside the store (a signing-key
    /// rotation), on its own and at most once: an event whose id is stored
    /// already is left as it is and is no error, so a retried change may
    /// record its event again.
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Opens the session of the link `id` until `until`, if the link exists,
    /// was never redeemed and has not expired at `now`: one conditional
    /// write, so a code works once even when tried twice at the same time.
    /// The link as redeemed, or `None`.
    async fn redeem_portal_link(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<PortalLink>, StoreError>;

    /// A portal link, strongly consistent.
    async fn portal_link(&self, id: &str) -> Result<Option<PortalLink>, StoreError>;

    /// Ends the session of the link `id` (the link can never open another);
    /// whether one was open.
    async fn end_portal_session(&self, id: &str) -> Result<bool, StoreError>;

    /// Keys newest first (by creation time, then id), of `owner` when
    /// given: at most `limit`, all after the position `after` when given
    /// (where the previous page ended). An index read: a key written a
    /// moment ago may be missing from it for that moment.
    async fn keys_page(
        &self,
        owner: Option<&Owner>,
        after: Option<&KeyPosition>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// Opens the connection a first request would otherwise open (for a
    /// network backend: DNS, TCP and TLS), so a cold start pays it during
    /// init. Nothing to do for a local backend.
    async fn warm_up(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
