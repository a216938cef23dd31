//! API keys: their format, how they are checked and what is stored of them.
//!
//! Format: `bauth_<key id: 16 hex>_<secret: 64 hex>_<checksum: 8 hex>`.
//! The prefix lets secret scanners spot a leaked key; the key id is the public
//! DynamoDB lookup (no scans); the checksum (first 4 bytes of SHA-256 over
//! everything before it) rejects typos and garbage before any database call.
//! Only SHA-256 of the secret is stored, and it is compared in constant time.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::domain::audit::Actor;
use crate::domain::owner::{Meta, Owner};
use crate::domain::scope::Scopes;

/// The recognisable prefix of every API key.
pub const PREFIX: &str = "bauth_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
const CHECKSUM_HEX: usize = 8;
const KEY_LEN: usize = PREFIX.len() + ID_HEX + 1 + SECRET_HEX + 1 + CHECKSUM_HEX;

/// Why a string is not an API key. Callers answer all of them with one
/// `invalid_client`; the variants exist for tests and logs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApiKeyError {
    /// Wrong length, prefix, separators or alphabet.
    #[error("not an API key")]
    Malformed,
    /// Well formed, but the checksum does not match.
    #[error("API key checksum mismatch")]
    Checksum,
}

/// A key id: 16 lowercase hex characters, public.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

/// A stored key id is validated as one given by a caller would be.
impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| de::Error::custom("not a key id"))
    }
}

impl KeyId {
    /// Validates a key id given on its own (admin commands, token `sub`).
    pub fn parse(s: &str) -> Option<Self> {
        is_lower_hex(s, ID_HEX).then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed API key: its public id and its secret.
pub struct ApiKey {
    id: KeyId,
    secret: SecretString,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a key secret, as stored (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(pub String);

impl ApiKey {
    /// Parses and checksums `s`; no database call needed to reject garbage.
    /// Any text gets an answer: the parts are found by splitting, never by
    /// slicing at offsets that might fall inside a multi-byte character.
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        if s.len() != KEY_LEN {
            return Err(ApiKeyError::Malformed);
        }
        let mut parts = s
            .strip_prefix(PREFIX)
            .ok_or(ApiKeyError::Malformed)?
            .split('_');
        let (Some(id), Some(secret), Some(checksum), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiKeyError::Malformed);
        };
        if !is_lower_hex(id, ID_HEX)
            || !is_lower_hex(secret, SECRET_HEX)
            || !is_lower_hex(checksum, CHECKSUM_HEX)
        {
            return Err(ApiKeyError::Malformed);
        }
        if checksum_of(id, secret) != checksum {
            return Err(ApiKeyError::Checksum);
        }
        Ok(Self {
            id: KeyId(id.to_owned()),
            secret: SecretString::from(secret.to_owned()),
        })
    }

    /// A new key with a fresh id and 256 bits of secret from the OS CSPRNG.
    pub fn generate() -> Result<Self, rand::rand_core::OsError> {
        let mut id = [0u8; ID_HEX / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        OsRng.try_fill_bytes(&mut id)?;
        OsRng.try_fill_bytes(&mut secret)?;
        Ok(Self {
            id: KeyId(hex::encode(id)),
            secret: SecretString::from(hex::encode(secret)),
        })
    }

    /// A new secret for the same key id (rotation).
    pub fn regenerate(id: &KeyId) -> Result<Self, rand::rand_core::OsError> {
        let fresh = Self::generate()?;
        Ok(Self {
            id: id.clone(),
            secret: fresh.secret,
        })
    }

    /// The public key id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The full key string, to show the owner exactly once.
    pub fn expose(&self) -> SecretString {
        let secret = self.secret.expose_secret();
        let checksum = checksum_of(self.id.as_str(), secret);
        SecretString::from(format!("{PREFIX}{}_{secret}_{checksum}", self.id))
    }

    /// The hash to store.
    pub fn hash(&self) -> SecretHash {
        SecretHash(hex::encode(Sha256::digest(
            self.secret.expose_secret().as_bytes(),
        )))
    }

    /// Whether this key's secret hashes to `stored`, in constant time.
    pub fn matches(&self, stored: &SecretHash) -> bool {
        let ours = self.hash();
        ours.0.as_bytes().ct_eq(stored.0.as_bytes()).into()
    }
}

fn checksum_of(id: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(PREFIX.as_bytes());
    h.update(id.as_bytes());
    h.update(b"_");
    h.update(secret.as_bytes());
    // The first four bytes, CHECKSUM_HEX hex characters.
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    hex::encode([a, b, c, d])
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a key can be used. Stored by its spelling ([`KeyStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Revoked for good.
    Revoked,
}

impl KeyStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    /// Parses the stored spelling; anything unknown reads as revoked (fail closed).
    pub fn from_stored(s: &str) -> Self {
        if s == "active" {
            Self::Active
        } else {
            Self::Revoked
        }
    }
}

impl Serialize for KeyStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_stored(&String::deserialize(deserializer)?))
    }
}

/// What the table holds of an API key. Never the key itself.
///
/// Its serde form is what both stores keep, the same in each: a DynamoDB
/// item's attributes (beside its keys) and an embedded store row's `record`.
/// The names are those items have always had, so older rows still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id.
    pub id: KeyId,
    /// A label for people.
    pub name: String,
    /// The provider's customer the key belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// What the provider wants back on every verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Scopes tokens of this key may carry.
    pub scopes: Scopes,
    /// Active or revoked.
    pub status: KeyStatus,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which the key no longer works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Hash of the current secret.
    pub secret_hash: SecretHash,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    /// Unix seconds of the last login or verify, to the hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    /// Hash of the secret replaced by the last rotation, and until when it
    /// still works (stored as `prev_secret_hash` and `prev_secret_until`).
    #[serde(flatten, with = "previous_secret")]
    pub previous_secret: Option<(SecretHash, u64)>,
    /// Unix milliseconds: every session minted at or before it is revoked
    /// (revoke-all is this one write, whatever the number of sessions); 0 = never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions_revoked_before: u64,
    /// The stored version this record was read at (0: never stored, or
    /// stored before versions existed). Every write of a key is conditional
    /// on it, so a concurrent change is never overwritten.
    #[serde(default)]
    pub version: u64,
}

impl KeyRecord {
    /// A new active record for `key`.
    pub fn new(
        key: &ApiKey,
        name: &str,
        scopes: Scopes,
        now: u64,
        expires_at: Option<u64>,
    ) -> Self {
        Self {
            id: key.id().clone(),
            name: name.to_owned(),
            owner: None,
            meta: None,
            scopes,
            status: KeyStatus::Active,
            created_at: now,
            expires_at,
            secret_hash: key.hash(),
            created_by: None,
            last_used_at: None,
            previous_secret: None,
            sessions_revoked_before: 0,
            version: 0,
        }
    }

    /// The record as a write stores it: at the next version. `None` past
    /// the last version, which no key reaches.
    pub fn as_written(&self) -> Option<Self> {
        Some(Self {
            version: self.version.checked_add(1)?,
            ..self.clone()
        })
    }

    /// The cut-off of the last revoke-all (Unix ms); `None` if there was none.
    pub fn sessions_cut_off(&self) -> Option<u64> {
        (self.sessions_revoked_before != 0).then_some(self.sessions_revoked_before)
    }

    /// Whether a session token minted at `minted_ms` was revoked by a
    /// revoke-all of this key.
    pub fn revoked_session_minted_at(&self, minted_ms: u64) -> bool {
        self.sessions_cut_off().is_some_and(|cut| minted_ms <= cut)
    }

    /// Whether the key is active and unexpired at `now`.
    pub fn is_usable(&self, now: u64) -> bool {
        self.status == KeyStatus::Active && self.expires_at.is_none_or(|exp| now < exp)
    }

    /// Whether `key`'s secret is this record's current one, or the previous
    /// one within its grace period, whatever the key's status. Both hashes are
    /// compared every time, so timing does not tell which matched.
    pub fn proves_possession(&self, key: &ApiKey, now: u64) -> bool {
        let current = key.matches(&self.secret_hash);
        let previous = match &self.previous_secret {
            Some((hash, until)) => key.matches(hash) & (now < *until),
            None => false,
        };
        key.id() == &self.id && (current | previous)
    }

    /// Whether `key` may log in as this record at `now`: usable and possessed.
    pub fn authenticates(&self, key: &ApiKey, now: u64) -> bool {
        self.proves_possession(key, now) && self.is_usable(now)
    }

    /// Replaces the secret with `key`'s; the old secret keeps working for `grace` seconds.
    pub fn rotate(&mut self, key: &ApiKey, now: u64, grace: u64) {
        let old = std::mem::replace(&mut self.secret_hash, key.hash());
        self.previous_secret = (grace > 0).then(|| (old, now.saturating_add(grace)));
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// [`KeyRecord::previous_secret`] as two flat fields, both present or both absent.
mod previous_secret {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SecretHash;

    #[derive(Serialize, Deserialize)]
    struct Flat {
        prev_secret_hash: SecretHash,
        prev_secret_until: u64,
    }

    pub fn serialize<S: Serializer>(
        previous: &Option<(SecretHash, u64)>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        previous
            .as_ref()
            .map(|(hash, until)| Flat {
                prev_secret_hash: hash.clone(),
                prev_secret_until: *until,
            })
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<(SecretHash, u64)>, D::Error> {
        let flat = Option::<Flat>::deserialize(deserializer)?;
        Ok(flat.map(|f| (f.prev_secret_hash, f.prev_secret_until)))
    }
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    fn fresh() -> (ApiKey, String) {
        let key = ApiKey::generate().unwrap();
        let text = key.expose().expose_secret().to_owned();
        (key, text)
    }

    #[test]
    fn a_generated_key_round_trips() {
        let (key, text) = fresh();
        assert!(text.starts_with(PREFIX));
        assert_eq!(text.len(), KEY_LEN);
        let parsed = ApiKey::parse(&text).unwrap();
        assert_eq!(parsed.id(), key.id());
        assert_eq!(parsed.hash(), key.hash());
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let (_, text) = fresh();
        let mut bytes = text.into_bytes();
        let i = PREFIX.len() + ID_HEX + 5;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(ApiKey::parse(&typo).unwrap_err(), ApiKeyError::Checksum);
    }

    #[test]
    fn garbage_is_malformed() {
        let (_, text) = fresh();
        let upper = text.to_uppercase();
        let cases = [
            "",
            "bauth_",
            &text[1..],
            &upper,
            &text.replacen("bauth_", "xauth_", 1),
            &format!("{text}0"),
        ];
        for bad in cases {
            assert_eq!(
                ApiKey::parse(bad).unwrap_err(),
                ApiKeyError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let (key, text) = fresh();
        let secret = &text[PREFIX.len() + ID_HEX + 1..][..SECRET_HEX];
        assert!(!format!("{key:?}").contains(secret));
    }

    #[test]
    fn only_the_right_secret_authenticates() {
        let (key, _) = fresh();
        let record = KeyRecord::new(&key, "ci", Scopes::parse("read").unwrap(), 100, None);
        assert!(record.authenticates(&key, 100));
        let other = ApiKey::regenerate(key.id()).unwrap();
        assert!(!record.authenticates(&other, 100));
    }

    #[test]
    fn revoked_and_expired_keys_do_not_authenticate() {
        let (key, _) = fresh();
        let mut record = KeyRecord::new(&key, "ci", Scopes::parse("read").unwrap(), 100, Some(200));
        assert!(record.authenticates(&key, 199));
        assert!(!record.authenticates(&key, 200));
        record.expires_at = None;
        record.status = KeyStatus::Revoked;
        assert!(!record.authenticates(&key, 150));
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_period() {
        let (old, _) = fresh();
        let mut record = KeyRecord::new(&old, "ci", Scopes::parse("read").unwrap(), 100, None);
        let new = ApiKey::regenerate(old.id()).unwrap();
        record.rotate(&new, 1000, 60);
        assert!(record.authenticates(&new, 1000));
        assert!(record.authenticates(&old, 1059));
        assert!(!record.authenticates(&old, 1060));
    }

    #[test]
    fn rotation_without_grace_cuts_the_old_secret_at_once() {
        let (old, _) = fresh();
        let mut record = KeyRecord::new(&old, "ci", Scopes::parse("read").unwrap(), 100, None);
        let new = ApiKey::regenerate(old.id()).unwrap();
        record.rotate(&new, 1000, 0);
        assert!(!record.authenticates(&old, 1000));
        assert!(record.authenticates(&new, 1000));
    }

    #[test]
    fn a_multi_byte_character_on_any_split_point_is_malformed() {
        let (_, text) = fresh();
        for c in ['é', '€', '😀'] {
            let width = c.len_utf8();
            for at in 0..=KEY_LEN - width {
                let mut bytes = text.clone().into_bytes();
                let mut buf = [0u8; 4];
                bytes.splice(at..at + width, c.encode_utf8(&mut buf).bytes());
                let hostile = String::from_utf8(bytes).unwrap();
                assert_eq!(hostile.len(), KEY_LEN);
                assert_eq!(
                    ApiKey::parse(&hostile).unwrap_err(),
                    ApiKeyError::Malformed,
                    "{c} at byte {at}"
                );
            }
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A key text built from raw id and secret bytes, as `generate` would.
        fn key_text(id: [u8; ID_HEX / 2], secret: [u8; SECRET_HEX / 2]) -> String {
            let key = ApiKey {
                id: KeyId(hex::encode(id)),
                secret: SecretString::from(hex::encode(secret)),
            };
            key.expose().expose_secret().to_owned()
        }

        /// Whatever `parse` makes of `s`: an error, or a key that spells `s`.
        fn parses_faithfully(s: &str) -> Result<(), TestCaseError> {
            if let Ok(key) = ApiKey::parse(s) {
                let spelled = key.expose();
                prop_assert_eq!(spelled.expose_secret(), s);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_string_is_an_error_or_the_key_it_spells(s in any::<String>()) {
                parses_faithfully(&s)?;
            }

            #[test]
            fn any_string_of_the_key_length_is_an_error_or_the_key_it_spells(
                s in proptest::string::string_regex("bauth_[0-9a-f_é€😀]{80,92}").unwrap()
            ) {
                parses_faithfully(&s)?;
            }

            #[test]
            fn valid_keys_round_trip(id in any::<[u8; 8]>(), secret in any::<[u8; 32]>()) {
                let text = key_text(id, secret);
                let key = ApiKey::parse(&text).unwrap();
                prop_assert_eq!(key.id().as_str(), hex::encode(id));
                let spelled = key.expose();
                prop_assert_eq!(spelled.expose_secret(), text.as_str());
            }

            #[test]
            fn a_valid_key_with_one_character_replaced_is_an_error_or_the_key_it_spells(
                id in any::<[u8; 8]>(),
                secret in any::<[u8; 32]>(),
                at in 0..KEY_LEN,
                c in any::<char>(),
            ) {
                let text = key_text(id, secret);
                let mutated: String = text
                    .chars()
                    .enumerate()
                    .map(|(i, old)| if i == at { c } else { old })
                    .collect();
                let result = ApiKey::parse(&mutated);
                if mutated != text && !matches!(c, '0'..='9' | 'a'..='f') {
                    prop_assert_eq!(result.unwrap_err(), ApiKeyError::Malformed);
                }
                parses_faithfully(&mutated)?;
            }
        }
    }

    #[test]
    fn unknown_status_reads_as_revoked() {
        assert_eq!(KeyStatus::from_stored("ACTIVE"), KeyStatus::Revoked);
        assert_eq!(KeyStatus::from_stored("active"), KeyStatus::Active);
    }
}
