//! What a provider attaches to a key: the customer it belongs to (`owner`)
//! and free metadata (`meta`) handed back on every verify.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::{Map, Value};
use thiserror::Error;

/// The provider's customer (tenant, account, user) a key belongs to: 1 to
/// 128 of `A-Z a-z 0-9 . _ : @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Owner(String);

/// The longest owner.
pub const MAX_OWNER_CHARS: usize = 128;

/// The most a key's `meta` may hold, serialised as JSON.
pub const MAX_META_BYTES: usize = 4096;

/// Why an owner or a meta value was refused. Never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OwnerError {
    /// Empty, too long or with a character outside the allowed set.
    #[error("owner must be 1-128 of A-Z a-z 0-9 . _ : @ -")]
    Owner,
    /// Not a JSON object.
    #[error("meta must be a JSON object")]
    MetaNotObject,
    /// Over [`MAX_META_BYTES`] serialised.
    #[error("meta must be at most 4 KiB as JSON")]
    MetaTooLarge,
}

impl Owner {
    /// Validates an owner.
    pub fn parse(text: &str) -> Result<Self, OwnerError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b".:_@-".contains(&b);
        if (1..=MAX_OWNER_CHARS).contains(&text.len()) && text.bytes().all(allowed) {
            Ok(Self(text.to_owned()))
        } else {
            Err(OwnerError::Owner)
        }
    }

    /// The owner as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored owner is validated as one given by a caller would be.
impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// A key's metadata: a JSON object of at most [`MAX_META_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Meta(Map<String, Value>);

// JSON numbers compare as equal or not; no NaN can come out of JSON.
impl Eq for Meta {}

impl Meta {
    /// Validates a metadata value.
    pub fn new(value: Value) -> Result<Self, OwnerError> {
        let Value::Object(map) = value else {
            return Err(OwnerError::MetaNotObject);
        };
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_META_BYTES {
            return Err(OwnerError::MetaTooLarge);
        }
        Ok(Self(map))
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The object as compact JSON text (what the authorizer's context carries).
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(Value::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn an_owner_is_1_to_128_of_the_allowed_characters() {
        for ok in [
            "a",
            "acme",
            "tenant:42",
            "user@example.com",
            "A.b_c-d",
            &"x".repeat(128),
        ] {
            assert_eq!(Owner::parse(ok).map(|o| o.to_string()), Ok(ok.to_owned()));
        }
        for bad in ["", " ", "a b", "a/b", "ü", "a\n", &"x".repeat(129)] {
            assert_eq!(Owner::parse(bad), Err(OwnerError::Owner), "{bad:?}");
        }
    }

    #[test]
    fn meta_is_an_object_of_at_most_4_kib() {
        assert!(Meta::new(json!({"plan": "pro", "n": 1})).is_ok());
        assert_eq!(Meta::new(json!([1])), Err(OwnerError::MetaNotObject));
        assert_eq!(Meta::new(json!("x")), Err(OwnerError::MetaNotObject));
        let fits = json!({"a": "x".repeat(MAX_META_BYTES - 8)});
        assert_eq!(serde_json::to_vec(&fits).unwrap().len(), MAX_META_BYTES);
        assert!(Meta::new(fits).is_ok());
        let over = json!({"a": "x".repeat(MAX_META_BYTES - 7)});
        assert_eq!(Meta::new(over), Err(OwnerError::MetaTooLarge));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_text_is_an_error_or_the_same_owner(text in any::<String>()) {
            if let Ok(owner) = Owner::parse(&text) {
                prop_assert_eq!(owner.as_str(), text.as_str());
            }
        }
    }
}
