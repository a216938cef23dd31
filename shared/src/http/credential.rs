//! The `Authorization` header: which scheme it names and what it carries.
//!
//! `credentials = auth-scheme 1*SP token68` (RFC 7235 §2.1; RFC 6750 §2.1
//! calls Bearer's `b64token`, the same alphabet). The scheme is matched in
//! any case; spaces and tabs around the parts are tolerated. Anything else
//! (no credentials after the scheme, a second word, bytes outside visible
//! ASCII, two headers) is [`Credential::Unusable`]: one parser for every
//! route, working on bytes, so no header value can make it panic.

use std::fmt;

use lambda_http::http::HeaderMap;
use lambda_http::http::header::AUTHORIZATION;

use crate::token::TokenError;

/// What the `Authorization` header of a request carries. Its `Debug` names
/// the scheme only: the credentials are secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    None,
    /// `Bearer <token>`: the token as sent.
    Bearer(&'a str),
    /// `Basic <credentials>`: still base64-encoded.
    Basic(&'a str),
    /// A well-formed scheme name other than Bearer or Basic.
    Other,
    /// Present, but unreadable: not visible ASCII, no scheme, or a Bearer or
    /// Basic scheme without exactly one well-formed credential after it.
    Unusable,
}

impl<'a> Credential<'a> {
    /// The credential of a request's headers; two `Authorization` headers are unusable.
    pub fn of(headers: &'a HeaderMap) -> Self {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (None, _) => Self::None,
            (Some(value), None) => Self::parse(value.as_bytes()),
            (Some(_), Some(_)) => Self::Unusable,
        }
    }

    /// Parses one header value.
    pub fn parse(value: &'a [u8]) -> Self {
        let printable = value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
        let Some(text) = std::str::from_utf8(value).ok().filter(|_| printable) else {
            return Self::Unusable;
        };
        let text = text.trim_matches(is_space);
        let (scheme, rest) = text.split_once(is_space).unwrap_or((text, ""));
        let credentials = rest.trim_start_matches(is_space);
        let bearer = scheme.eq_ignore_ascii_case("bearer");
        if !is_token(scheme) {
            Self::Unusable
        } else if !bearer && !scheme.eq_ignore_ascii_case("basic") {
            Self::Other
        } else if !is_token68(credentials) {
            Self::Unusable
        } else if bearer {
            Self::Bearer(credentials)
        } else {
            Self::Basic(credentials)
        }
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Bearer(_) => "Bearer(..)",
            Self::Basic(_) => "Basic(..)",
            Self::Other => "Other",
            Self::Unusable => "Unusable",
        })
    }
}

/// The token of an `Authorization: Bearer` header value. Another scheme is
/// [`TokenError::Missing`] (no bearer token was sent); a Bearer value without
/// a well-formed token, or a value that is not text, is [`TokenError::Malformed`].
pub fn bearer(value: &[u8]) -> Result<&str, TokenError> {
    match Credential::parse(value) {
        Credential::Bearer(token) => Ok(token),
        Credential::Basic(_) | Credential::Other => Err(TokenError::Missing),
        Credential::None | Credential::Unusable => Err(TokenError::Malformed),
    }
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 7230 §3.2.6 `token`: the characters of a scheme name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 7235 §2.1 `token68`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use lambda_http::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bearer_and_basic_parse_in_any_case_with_extra_spaces() {
        for (value, expected) in [
            ("Bearer abc.def.ghi", Credential::Bearer("abc.def.ghi")),
            ("bearer abc", Credential::Bearer("abc")),
            ("BEARER \t abc  ", Credential::Bearer("abc")),
            ("  Bearer abc", Credential::Bearer("abc")),
            ("Bearer a+/b==", Credential::Bearer("a+/b==")),
            ("Basic dXNlcjpwYXNz", Credential::Basic("dXNlcjpwYXNz")),
            ("basic   dXNlcjpwYXNz=", Credential::Basic("dXNlcjpwYXNz=")),
        ] {
            assert_eq!(Credential::parse(value.as_bytes()), expected, "{value:?}");
        }
    }

    #[test]
    fn anything_else_is_unusable() {
        for value in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer   ",
            b"Bearer a b",
            b"Bearer a=b",
            b"Bearer ==",
            b"Bearer \xc3\xa9",
            b"Bearer abc\xff",
            b"Bear\xc3\xa9r abc",
            b"Basic",
            b"Basic a:b",
            b"\xc3\xa9 abc",
            b"Digest \xff",
            b"(x) abc",
            b"Bearer\x00abc",
            b"Bearer a\x00",
        ] {
            assert_eq!(
                Credential::parse(value),
                Credential::Unusable,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn debug_never_prints_the_credentials() {
        let printed = format!(
            "{:?} {:?}",
            Credential::Bearer("s3cr3t"),
            Credential::Basic("s3cr3t")
        );
        assert_eq!(printed, "Bearer(..) Basic(..)");
    }

    #[test]
    fn another_scheme_is_told_apart() {
        for value in [
            &b"Digest username=\"x\", realm=\"y\""[..],
            b"Token abc",
            b"abc",
            b"Negotiate",
        ] {
            assert_eq!(Credential::parse(value), Credential::Other);
        }
    }

    #[test]
    fn two_authorization_headers_are_unusable() {
        let mut headers = HeaderMap::new();
        assert_eq!(Credential::of(&headers), Credential::None);
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(Credential::of(&headers), Credential::Bearer("a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(Credential::of(&headers), Credential::Unusable);
    }

    #[test]
    fn bearer_tells_a_missing_token_from_a_malformed_one() {
        assert_eq!(bearer(b"Bearer t0k.e-n_"), Ok("t0k.e-n_"));
        for missing in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Digest a=b",
            b"Token x y",
            b"Bearerx",
        ] {
            assert_eq!(bearer(missing), Err(TokenError::Missing));
        }
        for malformed in [
            &b""[..],
            b"Bearer",
            b"bearer  ",
            b"Bearer a b",
            b"Bearer \xff",
            b"\xff",
        ] {
            assert_eq!(bearer(malformed), Err(TokenError::Malformed));
        }
    }

    /// What a header value may hold: mostly the characters that matter here.
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        let interesting =
            prop::sample::select(&b"Bearer Basic \t=+/.-_~:,\"\x00\x7f\xc3\xa9\xff"[..]);
        prop::collection::vec(prop_oneof![interesting, any::<u8>()], 0..48)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_header_value_is_a_credential_of_its_own_text(value in header_bytes()) {
            match Credential::parse(&value) {
                Credential::Bearer(token) | Credential::Basic(token) => {
                    let text = std::str::from_utf8(&value).unwrap();
                    prop_assert!(text.trim_end_matches(is_space).ends_with(token));
                    prop_assert!(is_token68(token));
                    prop_assert!(!token.contains(is_space));
                }
                Credential::Other | Credential::Unusable => {}
                Credential::None => prop_assert!(false, "a value is never None"),
            }
        }

        #[test]
        fn any_header_value_is_a_bearer_token_or_a_token_error(value in header_bytes()) {
            match bearer(&value) {
                Ok(token) => prop_assert_eq!(Credential::parse(&value), Credential::Bearer(token)),
                Err(e) => prop_assert!(matches!(e, TokenError::Missing | TokenError::Malformed)),
            }
        }

        #[test]
        fn a_token68_after_a_scheme_is_read_back_whatever_the_spacing(
            scheme in prop::sample::select(&["Bearer", "bearer", "BASIC", "Basic"][..]),
            token in "[A-Za-z0-9._~+/-]{1,40}={0,2}",
            before in "[ \t]{0,3}",
            between in "[ \t]{1,3}",
            after in "[ \t]{0,3}",
        ) {
            let value = format!("{before}{scheme}{between}{token}{after}");
            let expected = if scheme.eq_ignore_ascii_case("bearer") {
                Credential::Bearer(&token)
            } else {
                Credential::Basic(&token)
            };
            prop_assert_eq!(Credential::parse(value.as_bytes()), expected);
        }
    }
}
