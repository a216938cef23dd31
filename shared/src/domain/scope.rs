//! Scopes: sets of space-separated scope tokens (RFC 6749 section 3.3).
//!
//! A [`Scopes`] value is always in canonical form (sorted, no duplicates), so
//! two spellings of the same set compare equal and sign to the same token.

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

/// A set of scope tokens such as `read`, `write` or `documents:read`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<String>);

/// Stored as the space-separated string tokens carry.
impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A stored scope string is parsed as one given by a caller would be.
impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A scope string that is not a space-separated list of RFC 6749 scope tokens.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "scope must be space-separated tokens of printable ASCII other than '\"' and '\\\\', at most 64 characters each"
)]
pub struct ScopeError;

const MAX_TOKEN: usize = 64;
const MAX_TOKENS: usize = 64;

impl Scopes {
    /// Parses a space-separated list. Empty strings and repeated spaces are
    /// rejected: a client that sends `""` meant something, and we will not guess.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ') {
            let valid = !token.is_empty()
                && token.len() <= MAX_TOKEN
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(ScopeError);
            }
            set.insert(token.to_owned());
        }
        if set.len() > MAX_TOKENS {
            return Err(ScopeError);
        }
        Ok(Self(set))
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes of `self` that are not in `held`, in canonical form.
    pub fn missing_from(&self, held: &Scopes) -> Scopes {
        Scopes(self.0.difference(&held.0).cloned().collect())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_sorts_and_deduplicates() {
        let s = Scopes::parse("write read documents:read read").unwrap();
        assert_eq!(s.to_string(), "documents:read read write");
    }

    #[test]
    fn sets_compare_regardless_of_order() {
        assert_eq!(Scopes::parse("a b").unwrap(), Scopes::parse("b a").unwrap());
    }

    #[test]
    fn malformed_scopes_are_rejected() {
        for bad in ["", " ", "read  write", "read ", "a\"b", "a\\b", "é", "a\tb"] {
            assert_eq!(Scopes::parse(bad), Err(ScopeError), "{bad:?}");
        }
        assert!(Scopes::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn subset_and_missing() {
        let held = Scopes::parse("read write").unwrap();
        let want = Scopes::parse("read admin").unwrap();
        assert!(!want.is_subset(&held));
        assert_eq!(want.missing_from(&held).to_string(), "admin");
        assert!(Scopes::parse("read").unwrap().is_subset(&held));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_text_is_an_error_or_a_set_that_reparses_to_itself(
                s in prop_oneof![any::<String>(), "[a-c:\" \\\\\t\u{7f}é]{0,24}"],
            ) {
                if let Ok(scopes) = Scopes::parse(&s) {
                    prop_assert!(!scopes.is_empty());
                    let canonical = scopes.to_string();
                    prop_assert_eq!(Scopes::parse(&canonical).unwrap(), scopes.clone());
                    for token in scopes.iter() {
                        prop_assert!(s.split(' ').any(|t| t == token));
                    }
                }
            }

            #[test]
            fn a_space_separated_list_of_valid_tokens_parses_to_its_set(
                tokens in prop::collection::vec("[!#-\\[\\]-~]{1,12}", 1..=12),
            ) {
                let scopes = Scopes::parse(&tokens.join(" ")).unwrap();
                let mut expected = tokens.clone();
                expected.sort();
                expected.dedup();
                prop_assert_eq!(scopes.iter().collect::<Vec<_>>(), expected);
            }
        }
    }
}
