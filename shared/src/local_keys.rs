//! Signing keys kept in a file of the local data directory, for the embedded
//! service (`authctl serve`): the counterpart of Secrets Manager's
//! AWSCURRENT and AWSPREVIOUS.
//!
//! The file is `{"current": {"kid", "key"}, "previous": {"kid", "key"} | null}`,
//! created on first use with a 256-bit key from the OS CSPRNG and mode 0600,
//! and replaced atomically (write, then rename) on rotation. Every
//! [`KeySource::load`] reads it again: the [`crate::keyring::KeyRing`] caches.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            write(
                &path,
                &KeyFile {
                    current: fresh()?,
                    previous: None,
                },
            )?;
        }
        Ok(Self { path })
    }

    /// Makes a fresh key current and keeps the current one as previous (it
    /// still verifies); the one before that is dropped. Returns the new kid.
    pub fn rotate(&self) -> Result<String, KeySourceError> {
        let old = read(&self.path)?;
        let current = fresh()?;
        let kid = current.kid.clone();
        write(
            &self.path,
            &KeyFile {
                current,
                previous: Some(old.current),
            },
        )?;
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

fn write(path: &Path, file: &KeyFile) -> Result<(), KeySourceError> {
    let fail = |e: std::io::Error| {
        KeySourceError::Invalid(format!("cannot write {}: {e}", path.display()))
    };
    let text =
        serde_json::to_string_pretty(file).map_err(|e| KeySourceError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&tmp).map_err(fail)?;
    std::io::Write::write_all(&mut out, text.as_bytes()).map_err(fail)?;
    out.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
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
