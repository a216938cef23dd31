//! Key administration: every change to a stored key goes through [`update`].
//!
//! A change is computed from the key as read and written only if the key is
//! still at that version; a write that loses re-reads and computes again. So
//! two changes made at once (a rotation and a revoke, from two processes)
//! both land in turn, and none is lost. On top of that a revocation is
//! sticky: whatever a change asks, a revoked key stays revoked and a
//! revoke-all cutoff never moves back.

use crate::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use crate::domain::store::{Store, StoreError};

/// Reads and conditional writes before a contended change gives up (503).
const ATTEMPTS: usize = 8;

/// A key change that was applied (or found already in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The key before the change, as last read.
    pub before: KeyRecord,
    /// The key as it is now stored.
    pub after: KeyRecord,
}

impl Updated {
    /// Whether the change changed anything: a repeated revoke does not.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// Applies `change` to the key `id` until one conditional write of it lands.
/// `None` when there is no such key. `change` may refuse (its error is
/// returned) and runs again on each re-read, so it must decide from the
/// record it is given alone.
pub async fn update<E: From<StoreError>>(
    store: &dyn Store,
    id: &KeyId,
    change: impl FnMut(&mut KeyRecord) -> Result<(), E>,
) -> Result<Option<Updated>, E> {
    match store.key(id).await? {
        None => Ok(None),
        Some(record) => update_from(store, record, change).await.map(Some),
    }
}

/// [`update`] starting from a record the caller has just read.
pub async fn update_from<E: From<StoreError>>(
    store: &dyn Store,
    mut before: KeyRecord,
    mut change: impl FnMut(&mut KeyRecord) -> Result<(), E>,
) -> Result<Updated, E> {
    for _ in 0..ATTEMPTS {
        let mut after = before.clone();
        change(&mut after)?;
        sticky(&before, &mut after);
        if after == before {
            return Ok(Updated {
                after: before.clone(),
                before,
            });
        }
        if store.save_key(&after).await? {
            after.version = after.version.saturating_add(1);
            return Ok(Updated { before, after });
        }
        before = store
            .key(&before.id)
            .await?
            .ok_or_else(|| StoreError::Internal("a key vanished while it was changed".into()))?;
    }
    Err(StoreError::Unavailable("key write contended; retry".into()).into())
}

/// What no change may undo, and what every write carries: the version read.
fn sticky(before: &KeyRecord, after: &mut KeyRecord) {
    if before.status == KeyStatus::Revoked {
        after.status = KeyStatus::Revoked;
    }
    after.sessions_revoked_before = after
        .sessions_revoked_before
        .max(before.sessions_revoked_before);
    after.id = before.id.clone();
    after.version = before.version;
}

/// Revokes a key for good. Its tokens fail verify from the next call on.
pub fn revoke(record: &mut KeyRecord) {
    record.status = KeyStatus::Revoked;
}

/// Ends every session minted up to `now_ms`: one write, whatever their number.
/// Logins mint after the cutoff even within its millisecond (see
/// [`crate::domain::login`]), so the cutoff moves at least one past the last one and
/// also ends those.
pub fn revoke_sessions(record: &mut KeyRecord, now_ms: u64) {
    record.sessions_revoked_before = now_ms.max(record.sessions_revoked_before.saturating_add(1));
}

/// Why a key cannot be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Revoked keys stay revoked; make a new key instead.
    #[error("the key is revoked")]
    Revoked,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gives `record` the secret of `key`; the old secret works `grace` seconds more.
pub fn rotate(
    record: &mut KeyRecord,
    key: &ApiKey,
    now: u64,
    grace: u64,
) -> Result<(), RotateError> {
    if record.status == KeyStatus::Revoked {
        return Err(RotateError::Revoked);
    }
    record.rotate(key, now, grace);
    Ok(())
}

/// How many sessions of `updated`'s key were live before the change and are
/// revoked by it: those minted after the old cutoff and up to the new one,
/// or all live ones when the change revoked the key.
pub async fn sessions_ended(
    store: &dyn Store,
    updated: &Updated,
    now: u64,
) -> Result<u64, StoreError> {
    let (before, after) = (&updated.before, &updated.after);
    if !updated.changed() || before.status == KeyStatus::Revoked {
        return Ok(0);
    }
    let key_revoked = after.status == KeyStatus::Revoked;
    let ended = store
        .unexpired_sessions(&after.id, now)
        .await?
        .iter()
        .filter(|s| !before.revoked_session_minted_at(s.minted_ms))
        .filter(|s| key_revoked || after.revoked_session_minted_at(s.minted_ms))
        .count();
    Ok(ended as u64)
}
