//! Signing keys kept in a file of the local data directory, for the embedded
//! service (`authctl serve`): the counterpart of Secrets Manager's
//! AWSCURRENT and AWSPREVIOUS.
//!
//! The file is `{"current": {"kid", "key", "created_at"}, "previous": {...} | null}`,
//! created on first use with a 256-bit key from the OS CSPRNG and mode 0600
//! (linked into place, so processes starting at once agree on one key), and
//! replaced atomically (write, then rename) on rotation. Rotations keep the
//! [`Spacing`] as the Secrets Manager ones do; `created_at` (Unix seconds) is
//! what they are spaced by. Every [`KeySource::load`] reads it again: the
//! [`crate::domain::keyring::KeyRing`] caches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::clock::{Clock, SystemClock};
use crate::domain::keyring::{KeySet, KeySource, KeySourceError, SigningKey};
use crate::domain::rotation::{Pace, Rotated, Spacing, TooSoon};

/// The file name inside the data directory.
pub const FILE_NAME: &str = "signing-keys.json";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    key: String,
    /// Absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: StoredKey,
    previous: Option<StoredKey>,
}

/// Why a local rotation did not happen; the file is unchanged.
#[derive(Debug, Error)]
pub enum LocalRotationError {
    /// Too soon after the previous rotation.
    #[error(transparent)]
    TooSoon(#[from] TooSoon),
    /// The file could not be read or written.
    #[error(transparent)]
    Keys(#[from] KeySourceError),
}

/// The signing keys of a local data directory.
pub struct LocalKeySource {
    path: PathBuf,
}

impl LocalKeySource {
    /// The key file in `dir`, created with a fresh key if it does not exist.
    pub fn open_or_create(dir: &Path) -> Result<Self, KeySourceError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            let file = KeyFile {
                current: fresh(
                    SystemClock
                        .now()
                        .map_err(|e| KeySourceError::Unavailable(Box::new(e)))?,
                )?,
                previous: None,
            };
            write(&path, &file, Write::CreateOnce)?;
        }
        Ok(Self { path })
    }

    /// Makes a fresh key current at `now` and keeps the current one as
    /// previous (it still verifies); the one before that is dropped, so
    /// unless `pace` is forced, this is refused sooner than `spacing` after
    /// the current key was made.
    pub fn rotate(
        &self,
        spacing: Spacing,
        pace: Pace,
        now: u64,
    ) -> Result<Rotated, LocalRotationError> {
        let old = read(&self.path)?;
        if old.previous.is_some() {
            let made = match old.current.created_at {
                Some(at) => at,
                // Written by a version that did not record it: the file was
                // last replaced when the current key was made.
                None => modified(&self.path)?,
            };
            spacing.check(pace, Some(made), now)?;
        }
        let current = fresh(now)?;
        let rotated = Rotated {
            kid: current.kid.clone(),
            replaced: Some(old.current.kid.clone()),
            dropped: old.previous.map(|k| k.kid),
        };
        let file = KeyFile {
            current,
            previous: Some(old.current),
        };
        write(&self.path, &file, Write::Replace)?;
        Ok(rotated)
    }
}

#[async_trait]
impl KeySource for LocalKeySource {
    async fn load(&self) -> Result<KeySet, KeySourceError> {
        let file = read(&self.path)?;
        let key = |k: &StoredKey| {
            SigningKey::new(&k.kid, &SecretString::from(k.key.clone())).map(Arc::new)
        };
        Ok(KeySet {
            current: key(&file.current)?,
            previous: file.previous.as_ref().map(key).transpose()?,
        })
    }
}

fn fresh(now: u64) -> Result<StoredKey, KeySourceError> {
    let mut key = [0u8; 32];
    let mut kid = [0u8; 8];
    let random = |buf: &mut [u8]| {
        OsRng
            .try_fill_bytes(buf)
            .map_err(|e| KeySourceError::Invalid(format!("no randomness: {e}")))
    };
    random(&mut key)?;
    random(&mut kid)?;
    Ok(StoredKey {
        kid: format!("local-{}", hex::encode(kid)),
        key: hex::encode(key),
        created_at: Some(now),
    })
}

/// When `path` was last written, in Unix seconds.
fn modified(path: &Path) -> Result<u64, KeySourceError> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| KeySourceError::Invalid(format!("cannot stat {}: {e}", path.display())))?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| KeySourceError::Invalid(format!("{} dates from before 1970", path.display())))
}

fn read(path: &Path) -> Result<KeyFile, KeySourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeySourceError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|_| {
        KeySourceError::Invalid(format!("{} is not a signing key file", path.display()))
    })
}

/// How [`write`] puts the file in place.
#[derive(Clone, Copy)]
enum Write {
    /// Only if there is none yet: of two processes starting on a new data
    /// dir at once, one key wins and both use it.
    CreateOnce,
    /// Over the existing file.
    Replace,
}

/// Writes `file` to a private temporary file, then links or renames it into
/// place, so that a reader never sees half a file.
fn write(path: &Path, file: &KeyFile, how: Write) -> Result<(), KeySourceError> {
    let fail = |e: std::io::Error| {
        KeySourceError::Invalid(format!("cannot write {}: {e}", path.display()))
    };
    let text =
        serde_json::to_string_pretty(file).map_err(|e| KeySourceError::Invalid(e.to_string()))?;
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "json.{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut out| {
        std::io::Write::write_all(&mut out, text.as_bytes())?;
        out.sync_all()
    });
    let placed = written.and_then(|()| match how {
        Write::Replace => std::fs::rename(&tmp, path),
        Write::CreateOnce => match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            linked => linked,
        },
    });
    // After a rename there is nothing left to remove; otherwise the temporary goes.
    std::fs::remove_file(&tmp).ok();
    placed.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Spacing = Spacing::new(7200, 5, 30);

    #[tokio::test]
    async fn a_new_directory_gets_one_key_and_rotation_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalKeySource::open_or_create(dir.path()).unwrap();
        let first = source.load().await.unwrap();
        assert!(first.previous.is_none());
        let again = LocalKeySource::open_or_create(dir.path())
            .unwrap()
            .load()
            .await
            .unwrap();
        assert_eq!(
            again.current.kid(),
            first.current.kid(),
            "an existing file is kept"
        );

        let now = SystemClock.now().unwrap();
        let rotated = source.rotate(SPACING, Pace::Spaced, now).unwrap();
        assert_eq!(rotated.dropped, None);
        let keys = source.load().await.unwrap();
        assert_eq!(keys.current.kid(), rotated.kid);
        assert_eq!(keys.previous.unwrap().kid(), first.current.kid());
        let later = now + SPACING.seconds();
        let second = source.rotate(SPACING, Pace::Spaced, later).unwrap();
        assert_eq!(second.dropped.as_deref(), Some(first.current.kid()));
        assert!(
            source
                .load()
                .await
                .unwrap()
                .find(first.current.kid())
                .is_none(),
            "two rotations drop a key"
        );
    }

    /// A key file whose keys were rotated once, the current key made at `made`.
    fn rotated_once_at(made: u64) -> (tempfile::TempDir, LocalKeySource) {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalKeySource::open_or_create(dir.path()).unwrap();
        source.rotate(SPACING, Pace::Spaced, made).unwrap();
        (dir, source)
    }

    #[test]
    fn the_file_remembers_when_each_key_was_made() {
        let (_dir, source) = rotated_once_at(1_700_000_000);
        let file = read(&source.path).unwrap();
        assert_eq!(file.current.created_at, Some(1_700_000_000));
        let first = file.previous.unwrap().created_at.unwrap();
        assert!(first.abs_diff(SystemClock.now().unwrap()) < 3600, "{first}");
    }

    #[test]
    fn a_second_rotation_exactly_one_spacing_later_is_allowed() {
        let (_dir, source) = rotated_once_at(1_700_000_000);
        let at = 1_700_000_000 + SPACING.seconds();
        assert!(source.rotate(SPACING, Pace::Spaced, at).is_ok());
    }

    #[test]
    fn a_second_rotation_one_second_sooner_is_refused_and_changes_nothing() {
        let (_dir, source) = rotated_once_at(1_700_000_000);
        let before = std::fs::read(&source.path).unwrap();
        let at = 1_700_000_000 + SPACING.seconds() - 1;
        match source.rotate(SPACING, Pace::Spaced, at) {
            Err(LocalRotationError::TooSoon(e)) => {
                assert_eq!(e.allowed_from, 1_700_000_000 + SPACING.seconds())
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&source.path).unwrap(), before);
    }

    #[test]
    fn a_forced_rotation_is_allowed_at_once_and_names_the_key_it_drops() {
        let (_dir, source) = rotated_once_at(1_700_000_000);
        let previous = read(&source.path).unwrap().previous.unwrap().kid;
        let rotated = source.rotate(SPACING, Pace::Forced, 1_700_000_000).unwrap();
        assert_eq!(rotated.dropped, Some(previous));
    }

    #[test]
    fn a_file_without_creation_times_is_spaced_from_its_last_write() {
        let (_dir, source) = rotated_once_at(1_700_000_000);
        let text = std::fs::read_to_string(&source.path).unwrap();
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        file["current"]
            .as_object_mut()
            .unwrap()
            .remove("created_at");
        std::fs::write(&source.path, file.to_string()).unwrap();
        let written = modified(&source.path).unwrap();
        assert!(
            source
                .rotate(SPACING, Pace::Spaced, written + SPACING.seconds() - 1)
                .is_err()
        );
        assert!(
            source
                .rotate(SPACING, Pace::Spaced, written + SPACING.seconds())
                .is_ok()
        );
    }

    #[test]
    fn processes_starting_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let kids: Vec<String> = std::thread::scope(|s| {
            let opens: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let source = LocalKeySource::open_or_create(dir.path()).unwrap();
                        read(&source.path).unwrap().current.kid
                    })
                })
                .collect();
            opens.into_iter().map(|o| o.join().unwrap()).collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left behind");
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        LocalKeySource::open_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
