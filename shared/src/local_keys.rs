//! Signing keys kept in a file of the local data directory, for the embedded
//! service (`authctl serve`): the counterpart of Secrets Manager's
//! AWSCURRENT and AWSPREVIOUS.
//!
//! The file is `{"current": {"kid", "key"}, "previous": {"kid", "key"} | null}`,
//! created on first use with a 256-bit key from the OS CSPRNG and mode 0600
//! (linked into place, so processes starting at once agree on one key), and
//! replaced atomically (write, then rename) on rotation. Every
//! [`KeySource::load`] reads it again: the [`crate::keyring::KeyRing`] caches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::keyring::{KeySet, KeySource, KeySourceError, SigningKey};

/// The file name inside the data directory.
pub const FILE_NAME: &str = "signing-keys.json";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: StoredKey,
    previous: Option<StoredKey>,
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
                current: fresh()?,
                previous: None,
            };
            write(&path, &file, Write::CreateOnce)?;
        }
        Ok(Self { path })
    }

    /// Makes a fresh key current and keeps the current one as previous (it
    /// still verifies); the one before that is dropped. Returns the new kid.
    pub fn rotate(&self) -> Result<String, KeySourceError> {
        let old = read(&self.path)?;
        let current = fresh()?;
        let kid = current.kid.clone();
        let file = KeyFile {
            current,
            previous: Some(old.current),
        };
        write(&self.path, &file, Write::Replace)?;
        Ok(kid)
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

fn fresh() -> Result<StoredKey, KeySourceError> {
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
    })
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

        let kid = source.rotate().unwrap();
        let rotated = source.load().await.unwrap();
        assert_eq!(rotated.current.kid(), kid);
        assert_eq!(rotated.previous.unwrap().kid(), first.current.kid());
        source.rotate().unwrap();
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
