//! Session ids: the caller's name for a process or tenant that holds its own token.

use std::fmt;

use thiserror::Error;

/// A validated session id: 1-128 characters of `A-Z a-z 0-9 . _ ~ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

/// The session a login uses when the caller names none.
pub const DEFAULT_SESSION: &str = "default";

/// A session id outside the allowed alphabet or length.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("session_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ : -")]
pub struct SessionIdError;

impl SessionId {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, SessionIdError> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'-')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(SessionIdError)
        }
    }

    /// The default session.
    pub fn default_session() -> Self {
        Self(DEFAULT_SESSION.to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_alphabet_parses() {
        assert!(SessionId::parse("worker-1.eu_west~a:b").is_ok());
        assert!(SessionId::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in ["", "a b", "a/b", "ä", "a#b", "SESSION#x"] {
            assert_eq!(SessionId::parse(bad), Err(SessionIdError), "{bad:?}");
        }
        assert!(SessionId::parse(&"a".repeat(129)).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_text_is_an_error_or_the_same_id(s in prop_oneof![any::<String>(), "[A-Za-z0-9._~:/# é-]{0,130}"]) {
                let allowed = (1..=128).contains(&s.len())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "._~:-".contains(c));
                match SessionId::parse(&s) {
                    Ok(id) => {
                        prop_assert!(allowed, "{s:?}");
                        prop_assert_eq!(id.as_str(), s.as_str());
                    }
                    Err(SessionIdError) => prop_assert!(!allowed, "{s:?}"),
                }
            }
        }
    }
}
