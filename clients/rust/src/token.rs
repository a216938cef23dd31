//! The bearer token, which never prints, and the lifetime its claims state.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// A bearer token as the service issued it. `Debug` shows no part of it;
/// there is no `Display`, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub(crate) fn new(value: String) -> Self {
        Self(value.into())
    }

    /// The token itself, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lifetime the token's `iat` and `exp` claims state, if it is a JWT
    /// that has both. The payload is decoded, not verified: the lifetime
    /// only schedules refreshes, and the server checks the token anyway.
    pub(crate) fn lifetime(&self) -> Option<Duration> {
        #[derive(Deserialize)]
        struct Claims {
            iat: u64,
            exp: u64,
        }
        let payload = self.0.split('.').nth(1)?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claims: Claims = serde_json::from_slice(&json).ok()?;
        let seconds = claims.exp.checked_sub(claims.iat).filter(|s| *s > 0)?;
        Some(Duration::from_secs(seconds))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> AccessToken {
        AccessToken::new(format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        ))
    }

    #[test]
    fn the_lifetime_comes_from_iat_and_exp() {
        let token = jwt(r#"{"iat": 1000, "exp": 1060, "sub": "k"}"#);
        assert_eq!(token.lifetime(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn an_opaque_or_odd_token_has_no_lifetime() {
        for token in [
            AccessToken::new("opaque".into()),
            AccessToken::new("a.%%%.c".into()),
            jwt(r#"{"iat": 1000}"#),
            jwt(r#"{"iat": 1060, "exp": 1000}"#),
            jwt("not json"),
        ] {
            assert_eq!(token.lifetime(), None, "{}", token.as_str());
        }
    }

    #[test]
    fn debug_shows_nothing_of_the_token() {
        let token = AccessToken::new("secret-token-value".into());
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
    }
}
