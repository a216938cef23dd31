//! The signing key ring: which keys sign and which verify.
//!
//! A [`KeySource`] loads the current key (signs and verifies) and the previous
//! one (verifies only), so a rotation never breaks a live token. [`KeyRing`]
//! caches what the source gave for a configured time. It loads the current
//! key alone at first: that signs, and verifies every token minted since the
//! last rotation, so a cold start and each refresh wait on one call, not two.
//! The first token naming another kid completes the set (both keys), and
//! after that an unknown kid refreshes early at most once per
//! [`FORCED_REFRESH_INTERVAL`], so a flood of forged kids cannot hammer the
//! source.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use jsonwebtoken::EncodingKey;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use thiserror::Error;

/// Shortest signing secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// Least time between two refreshes forced by unknown kids.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// An HS256 key and its id. `Debug` never prints the secret.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    /// HMAC-SHA256 with the key schedule already run: verify clones it
    /// instead of hashing the key again for every token.
    verifying: Hmac<Sha256>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a key source could not give keys.
#[derive(Debug, Error)]
pub enum KeySourceError {
    /// The backend could not be reached or refused (503).
    #[error("signing key source unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The secret exists but is unusable: a deployment error (500).
    #[error("signing key is misconfigured: {0}")]
    Invalid(String),
}

impl SigningKey {
    /// A key from its id and secret; the secret must have at least [`MIN_SECRET_CHARS`] characters.
    pub fn new(kid: &str, secret: &SecretString) -> Result<Self, KeySourceError> {
        let bytes = secret.expose_secret().as_bytes();
        if secret.expose_secret().chars().count() < MIN_SECRET_CHARS {
            return Err(KeySourceError::Invalid(format!(
                "key {kid} is shorter than {MIN_SECRET_CHARS} characters"
            )));
        }
        if !crate::domain::token::is_valid_kid(kid) {
            return Err(KeySourceError::Invalid("key id is not a valid kid".into()));
        }
        Ok(Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_secret(bytes),
            verifying: Hmac::new_from_slice(bytes)
                .map_err(|_| KeySourceError::Invalid("unusable HMAC key".into()))?,
        })
    }

    /// The key id (`kid` header).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// For signing.
    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    /// Whether `signature` is this key's HMAC-SHA256 of `message`, compared
    /// in constant time.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying
            .clone()
            .chain_update(message)
            .verify_slice(signature)
            .is_ok()
    }

    /// A key for another purpose, derived from this one: HMAC-SHA256 of
    /// `label` under it. Distinct labels give independent keys, none of which
    /// tells anything of this key or signs a token.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        self.verifying
            .clone()
            .chain_update(label)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// The keys in force: one that signs, and the one before it that still verifies.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// Signs new tokens; verifies.
    pub current: Arc<SigningKey>,
    /// Verifies tokens signed before the last rotation.
    pub previous: Option<Arc<SigningKey>>,
}

impl KeySet {
    /// The key named `kid`, if held.
    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.kid == kid)
    }
}

/// Where signing keys come from (Secrets Manager, a local file).
#[async_trait]
pub trait KeySource: Send + Sync {
    /// Loads the keys in force now.
    async fn load(&self) -> Result<KeySet, KeySourceError>;

    /// Loads at least the current key, for a source where that alone is
    /// cheaper than [`KeySource::load`] (one Secrets Manager call, not two).
    /// By default, everything [`KeySource::load`] gives.
    async fn load_current(&self) -> Result<KeySet, KeySourceError> {
        self.load().await
    }
}

struct Cached {
    keys: KeySet,
    /// Whether `keys` holds the previous key too (from [`KeySource::load`]).
    complete: bool,
    loaded: Instant,
}

/// A caching view of a [`KeySource`], shared by all requests of one environment.
pub struct KeyRing {
    source: Arc<dyn KeySource>,
    ttl: Duration,
    cache: RwLock<Option<Cached>>,
    // Serialises loads, so that concurrent requests on a cold cache make one
    // call, and remembers when the last forced refresh happened.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyRing {
    /// A ring that caches `source` for `ttl`.
    pub fn new(source: Arc<dyn KeySource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// The keys in force, from the cache while it is fresh; `current` is
    /// always there, `previous` only once a token has asked for it.
    pub async fn keys(&self) -> Result<KeySet, KeySourceError> {
        if let Some((keys, _)) = self.fresh() {
            return Ok(keys);
        }
        let _guard = self.refresh.lock().await;
        // Another request may have loaded while this one waited.
        if let Some((keys, _)) = self.fresh() {
            return Ok(keys);
        }
        self.load(false).await
    }

    /// The key named `kid`: from the cache; else, once, after loading the
    /// previous key beside the current one; else after one forced refresh
    /// when no forced refresh happened in the last 10 s.
    pub async fn find(&self, kid: &str) -> Result<Option<Arc<SigningKey>>, KeySourceError> {
        let keys = self.keys().await?;
        if let Some(key) = keys.find(kid) {
            return Ok(Some(key.clone()));
        }
        let mut last_forced = self.refresh.lock().await;
        let complete = match self.fresh() {
            Some((keys, complete)) => match keys.find(kid) {
                Some(key) => return Ok(Some(key.clone())),
                None => complete,
            },
            None => false,
        };
        if complete {
            if last_forced.is_some_and(|t| t.elapsed() < FORCED_REFRESH_INTERVAL) {
                return Ok(None);
            }
            *last_forced = Some(Instant::now());
        }
        let keys = self.load(true).await?;
        Ok(keys.find(kid).cloned())
    }

    fn fresh(&self) -> Option<(KeySet, bool)> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .as_ref()
            .filter(|c| c.loaded.elapsed() < self.ttl)
            .map(|c| (c.keys.clone(), c.complete))
    }

    /// Loads the current key, with the previous one when `complete`.
    async fn load(&self, complete: bool) -> Result<KeySet, KeySourceError> {
        let keys = if complete {
            self.source.load().await?
        } else {
            self.source.load_current().await?
        };
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *cache = Some(Cached {
            keys: keys.clone(),
            complete,
            loaded: Instant::now(),
        });
        Ok(keys)
    }
}

/// A fixed key set: for the embedded store's local file and for tests.
pub struct StaticKeySource(pub KeySet);

#[async_trait]
impl KeySource for StaticKeySource {
    async fn load(&self) -> Result<KeySet, KeySourceError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A source whose kids the test sets (current first), counting its loads.
    struct Counting {
        loads: AtomicUsize,
        current_loads: AtomicUsize,
        kids: std::sync::Mutex<Vec<&'static str>>,
    }

    impl Counting {
        /// (full loads, current-only loads) so far.
        fn loads(&self) -> (usize, usize) {
            (
                self.loads.load(Ordering::SeqCst),
                self.current_loads.load(Ordering::SeqCst),
            )
        }

        fn set(&self) -> KeySet {
            let kids = self.kids.lock().unwrap().clone();
            let key = |kid: &str| {
                Arc::new(SigningKey::new(kid, &SecretString::from("s".repeat(32))).unwrap())
            };
            KeySet {
                current: key(kids[0]),
                previous: kids.get(1).map(|k| key(k)),
            }
        }
    }

    #[async_trait]
    impl KeySource for Counting {
        async fn load(&self) -> Result<KeySet, KeySourceError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(self.set())
        }

        async fn load_current(&self) -> Result<KeySet, KeySourceError> {
            self.current_loads.fetch_add(1, Ordering::SeqCst);
            Ok(KeySet {
                previous: None,
                ..self.set()
            })
        }
    }

    fn ring(ttl: Duration, kids: &[&'static str]) -> (Arc<Counting>, KeyRing) {
        let source = Arc::new(Counting {
            loads: AtomicUsize::new(0),
            current_loads: AtomicUsize::new(0),
            kids: std::sync::Mutex::new(kids.to_vec()),
        });
        (source.clone(), KeyRing::new(source, ttl))
    }

    #[tokio::test]
    async fn the_current_key_alone_is_loaded_and_cached_for_the_ttl() {
        let (source, ring) = ring(Duration::from_secs(300), &["v2", "v1"]);
        for _ in 0..5 {
            assert_eq!(ring.keys().await.unwrap().current.kid(), "v2");
            assert_eq!(ring.find("v2").await.unwrap().unwrap().kid(), "v2");
        }
        assert_eq!(source.loads(), (0, 1));
    }

    #[tokio::test]
    async fn a_zero_ttl_loads_every_time() {
        let (source, ring) = ring(Duration::ZERO, &["v1"]);
        ring.keys().await.unwrap();
        ring.keys().await.unwrap();
        assert_eq!(source.loads(), (0, 2));
    }

    #[tokio::test]
    async fn the_previous_key_is_loaded_when_a_token_names_it_and_still_verifies() {
        let (source, ring) = ring(Duration::from_secs(300), &["v2", "v1"]);
        assert_eq!(ring.keys().await.unwrap().current.kid(), "v2");
        for _ in 0..3 {
            assert_eq!(ring.find("v1").await.unwrap().unwrap().kid(), "v1");
        }
        assert_eq!(
            source.loads(),
            (1, 1),
            "one load of both keys, then the cache"
        );
        assert_eq!(ring.keys().await.unwrap().current.kid(), "v2");
    }

    #[tokio::test]
    async fn an_unknown_kid_forces_one_refresh_then_waits() {
        let (source, ring) = ring(Duration::from_secs(300), &["v1"]);
        ring.keys().await.unwrap();
        source.kids.lock().unwrap().insert(0, "v2");
        // Rotated elsewhere: completing the set finds the new current key.
        assert_eq!(ring.find("v2").await.unwrap().unwrap().kid(), "v2");
        assert_eq!(source.loads(), (1, 1));
        // A forged kid: the set is complete, so one forced refresh...
        assert!(ring.find("forged").await.unwrap().is_none());
        assert_eq!(source.loads(), (2, 1));
        // ...and no further load within 10 s.
        assert!(ring.find("forged2").await.unwrap().is_none());
        assert!(ring.find("forged3").await.unwrap().is_none());
        assert_eq!(source.loads(), (2, 1));
    }

    #[test]
    fn short_secrets_and_bad_kids_are_refused() {
        assert!(SigningKey::new("v1", &SecretString::from("s".repeat(31))).is_err());
        assert!(SigningKey::new("a/b", &SecretString::from("s".repeat(32))).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = SigningKey::new("v1", &SecretString::from("topsecret".repeat(4))).unwrap();
        assert!(!format!("{k:?}").contains("topsecret"));
    }
}
