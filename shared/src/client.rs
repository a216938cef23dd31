//! Who is calling: API key holders proving their key, and OAuth2 client
//! credentials (RFC 6749 §2.3.1) mapped onto API keys.
//!
//! OAuth2 clients authenticate with `client_id` = the key id and
//! `client_secret` = the whole API key, by HTTP Basic (`client_secret_basic`)
//! or by form fields (`client_secret_post`). HTTP Basic carries both
//! form-urlencoded before base64 (RFC 6749 §2.3.1): a strict client sends the
//! key's `_` as `%5F`, so both parts are decoded before use.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::api_key::{ApiKey, KeyRecord};
use crate::app::App;
use crate::error::ApiError;
use crate::request::Fields;
use crate::telemetry::Audit;

/// How much a key must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// The secret matches and the key is active and unexpired (to get or check tokens).
    Usable,
    /// The secret matches, whatever the key's status: enough to take access
    /// away (revoke), never to gain it.
    Possession,
}

/// The key and its record, when `api_key` meets `requirement`; one read.
pub async fn authenticate(
    app: &App,
    api_key: &SecretString,
    requirement: Requirement,
    audit: &mut Audit,
) -> Result<(ApiKey, KeyRecord), ApiError> {
    let key = caller(api_key, audit)?;
    let record = app.store.key(key.id()).await?;
    let record = admit(record, &key, requirement, app.clock.now()?)?;
    Ok((key, record))
}

/// The well-formed key in `api_key`, before any read; its id goes in the log.
pub fn caller(api_key: &SecretString, audit: &mut Audit) -> Result<ApiKey, ApiError> {
    let key = ApiKey::parse(api_key.expose_secret()).map_err(|_| ApiError::InvalidClient)?;
    audit.key_id = Some(key.id().to_string());
    Ok(key)
}

/// The stored `record` of `key`, when `key` meets `requirement` against it.
pub fn admit(
    record: Option<KeyRecord>,
    key: &ApiKey,
    requirement: Requirement,
    now: u64,
) -> Result<KeyRecord, ApiError> {
    record
        .filter(|r| match requirement {
            Requirement::Usable => r.authenticates(key, now),
            Requirement::Possession => r.proves_possession(key, now),
        })
        .ok_or(ApiError::InvalidClient)
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
        (None, None) => return Err(ApiError::InvalidClient),
        (Some(encoded), None) => {
            let (id, secret) = basic_credentials(encoded).ok_or(ApiError::InvalidClient)?;
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
    let key = ApiKey::parse(secret.expose_secret()).map_err(|_| ApiError::InvalidClient)?;
    if key.id().as_str() != id {
        return Err(ApiError::InvalidClient);
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
            Err(ApiError::InvalidClient)
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
            Err(ApiError::InvalidClient)
        ));
        assert!(matches!(
            client_credentials(Some("%%%"), &Fields::Empty),
            Err(ApiError::InvalidClient)
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
                    Err(e) => prop_assert!(matches!(e, ApiError::InvalidClient), "{e:?}"),
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
