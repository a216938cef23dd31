//! The `Authorization` header: which scheme it names and what it carries.
//!
//! `credentials = auth-scheme 1*SP token68` (RFC 7235 §2.1; RFC 6750 §2.1
//! calls Bearer's `b64token`, the same alphabet). The scheme is matched in
//! any case; spaces and tabs around the parts are tolerated. Anything else
//! (no credentials after the scheme, a second word, bytes outside visible
//! ASCII, two headers) is [`Credential::Unusable`]: one parser for every
//! route, working on bytes, so no header value can make it panic.
//!
//! OAuth2 clients authenticate with `client_id` = the key id and
//! `client_secret` = the whole API key, by HTTP Basic (`client_secret_basic`)
//! or by form fields (`client_secret_post`): [`client_credentials`]. HTTP
//! Basic carries both form-urlencoded before base64 (RFC 6749 §2.3.1): a
//! strict client sends the key's `_` as `%5F`, so both parts are decoded
//! before use.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::HeaderMap;
use lambda_http::http::header::AUTHORIZATION;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::Error;
use crate::domain::api_key::ApiKey;
use crate::domain::token::TokenError;
use crate::http::body::Fields;
use crate::http::error::ApiError;

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

/// OAuth2 client credentials from a request.
pub struct ClientCredentials {
    /// The API key presented as `client_secret`, after checking that
    /// `client_id` names its key id.
    pub api_key: SecretString,
}

/// Extracts client credentials from an `Authorization: Basic` value or the
/// `client_id`/`client_secret` fields. Using both methods, or neither, is an
/// error; a `client_id` that is not the secret's key id is `invalid_client`.
pub fn client_credentials(
    basic: Option<&str>,
    fields: &Fields,
) -> Result<ClientCredentials, ApiError> {
    let (id, secret) = match (basic, fields.text("client_secret")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "authenticate with HTTP Basic or client_secret, not both".into(),
            ));
        }
        (None, None) => return Err(Error::InvalidClient.into()),
        (Some(encoded), None) => {
            let (id, secret) = basic_credentials(encoded).ok_or(Error::InvalidClient)?;
            if fields.text("client_id")?.is_some_and(|f| f != id) {
                return Err(ApiError::InvalidRequest(
                    "client_id differs from the Basic credentials".into(),
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = fields
                .text("client_id")?
                .ok_or_else(|| ApiError::InvalidRequest("field client_id is required".into()))?;
            (id.to_owned(), SecretString::from(secret.to_owned()))
        }
    };
    let key = ApiKey::parse(secret.expose_secret()).map_err(|_| Error::InvalidClient)?;
    if key.id().as_str() != id {
        return Err(Error::InvalidClient.into());
    }
    Ok(ClientCredentials { api_key: secret })
}

/// The client id and secret of a Basic credential: base64 of
/// `urlencode(id) ":" urlencode(secret)`, both parts decoded. `None` for
/// anything else, including a part that does not decode to UTF-8.
pub fn basic_credentials(encoded: &str) -> Option<(String, SecretString)> {
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    // An encoded id holds no ':', so the first one separates the parts.
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, SecretString::from(form_decode(secret)?)))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
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

#[cfg(test)]
mod client_tests {
    use super::*;

    fn key() -> (String, String) {
        let k = ApiKey::generate().unwrap();
        (k.id().to_string(), k.expose().expose_secret().to_owned())
    }

    fn form(body: &str) -> Fields {
        Fields::form(body.as_bytes()).unwrap()
    }

    #[test]
    fn basic_and_post_credentials_both_work() {
        let (id, secret) = key();
        let basic = STANDARD.encode(format!("{id}:{secret}"));
        let c = client_credentials(Some(&basic), &Fields::Empty).unwrap();
        assert_eq!(c.api_key.expose_secret(), secret);
        let c = client_credentials(
            None,
            &form(&format!("client_id={id}&client_secret={secret}")),
        )
        .unwrap();
        assert_eq!(c.api_key.expose_secret(), secret);
    }

    #[test]
    fn basic_credentials_are_form_decoded_before_use() {
        let (id, secret) = key();
        let strict = STANDARD.encode(format!("{id}:{}", secret.replace('_', "%5F")));
        let c = client_credentials(Some(&strict), &Fields::Empty).unwrap();
        assert_eq!(c.api_key.expose_secret(), secret);

        let (id, secret) = basic_credentials(&STANDARD.encode("a%3Ab+c:x%2By+z%25")).unwrap();
        assert_eq!((id.as_str(), secret.expose_secret()), ("a:b c", "x+y z%"));
        // Malformed escapes stay as they are, and then fail as a key would.
        let (_, secret) = basic_credentials(&STANDARD.encode("a:%zz%")).unwrap();
        assert_eq!(secret.expose_secret(), "%zz%");
        assert!(
            basic_credentials(&STANDARD.encode("a:%ff")).is_none(),
            "not UTF-8"
        );
        assert!(basic_credentials(&STANDARD.encode("no colon")).is_none());
    }

    #[test]
    fn a_client_id_that_is_not_the_keys_id_is_refused() {
        let (_, secret) = key();
        let (other, _) = key();
        let basic = STANDARD.encode(format!("{other}:{secret}"));
        assert!(matches!(
            client_credentials(Some(&basic), &Fields::Empty),
            Err(ApiError::Domain(Error::InvalidClient))
        ));
    }

    #[test]
    fn both_methods_or_none_are_errors() {
        let (id, secret) = key();
        let basic = STANDARD.encode(format!("{id}:{secret}"));
        let both = form(&format!("client_id={id}&client_secret={secret}"));
        assert!(matches!(
            client_credentials(Some(&basic), &both),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            client_credentials(None, &Fields::Empty),
            Err(ApiError::Domain(Error::InvalidClient))
        ));
        assert!(matches!(
            client_credentials(Some("%%%"), &Fields::Empty),
            Err(ApiError::Domain(Error::InvalidClient))
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// What a client might urlencode: the characters that change under it.
        const RAW: &str = "[a-z0-9_:+% é]{0,24}";

        fn form_encode(s: &str) -> String {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_basic_value_is_credentials_or_invalid_client(value in "[ -~]{0,64}") {
                match client_credentials(Some(&value), &Fields::Empty) {
                    Ok(c) => prop_assert!(ApiKey::parse(c.api_key.expose_secret()).is_ok()),
                    Err(e) => prop_assert!(matches!(e, ApiError::Domain(Error::InvalidClient)), "{e:?}"),
                }
            }

            #[test]
            fn any_base64_of_any_bytes_is_decoded_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                if let Some((id, _)) = basic_credentials(&STANDARD.encode(&bytes)) {
                    prop_assert!(std::str::from_utf8(&bytes).is_ok_and(|t| t.contains(':')), "{id}");
                }
            }

            #[test]
            fn urlencoded_parts_decode_to_what_was_encoded(id in RAW, secret in RAW, plus in any::<bool>()) {
                // Spaces may be sent as `+` or `%20`; both decode to a space.
                let encode = |s: &str| {
                    let e = form_encode(s);
                    if plus { e.replace("%20", "+") } else { e }
                };
                let value = STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
                let (got_id, got_secret) = basic_credentials(&value).unwrap();
                prop_assert_eq!(got_id, id);
                prop_assert_eq!(got_secret.expose_secret(), secret.as_str());
            }
        }
    }
}
