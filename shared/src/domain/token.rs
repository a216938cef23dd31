//! Access tokens: their claims, signing, and the ordered checks of verify.
//!
//! Checks run cheapest and most dangerous first, each with its own
//! [`TokenError`]: size, shape, pinned algorithm, `typ`, no `crit`, kid (then
//! the caller looks the key up), signature, time claims against our clock,
//! issuer and audience.
//! Session state is checked afterwards by [`crate::domain::verify`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::config::TokenPolicy;
use crate::domain::keyring::SigningKey;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The claims we sign. Field order is the serialization order, which keeps
/// signing deterministic: the same claims and key give the same bytes, so a
/// session's token can be re-signed from what the table stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The API key id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Unique token id.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before; we never set it, but honour it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Space-separated scopes, canonical order.
    pub scope: String,
}

/// Why a token is not valid. The `Display` text is the client's `error_description`.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    /// No token in the request.
    #[error("no bearer token")]
    Missing,
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// Not three base64url parts with a JSON header.
    #[error("token is malformed")]
    Malformed,
    /// Header `alg` other than HS256.
    #[error("token algorithm is not accepted")]
    Algorithm,
    /// Header `typ` present and other than `JWT`: another kind of token.
    #[error("token type is not accepted")]
    Type,
    /// Header `crit` present: extensions we would have to understand (RFC 7515 §4.1.11).
    #[error("token has critical header parameters")]
    Critical,
    /// Missing, malformed or unknown `kid`.
    #[error("token signing key is unknown")]
    UnknownKey,
    /// Signature does not match.
    #[error("token signature is invalid")]
    Signature,
    /// Claims missing or of the wrong type.
    #[error("token claims are malformed")]
    Claims,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `iss` is not ours.
    #[error("token issuer is not accepted")]
    Issuer,
    /// `aud` is not ours.
    #[error("token audience is not accepted")]
    Audience,
    /// The session no longer holds this token, or the key is revoked or expired.
    #[error("token has been revoked")]
    Revoked,
}

/// A token that passed the checks that need no key: size, shape, algorithm, kid shape.
#[derive(Debug)]
pub struct Unverified<'a> {
    raw: &'a str,
    kid: String,
}

impl Unverified<'_> {
    /// The `kid` the header names; look the key up with it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The header members we check. serde refuses one named twice (so no two
/// parsers can read different values); others are ignored.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    typ: Option<String>,
    #[serde(default)]
    crit: Present,
    kid: Option<String>,
}

/// Whether a member was there at all, whatever its value (`null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

/// Size, shape and header checks, in that order.
pub fn inspect(raw: &str) -> Result<Unverified<'_>, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = raw.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(b64url(header) && b64url(payload) && b64url(signature)) {
        return Err(TokenError::Malformed);
    }
    let header: RawHeader = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
    // Pinned: the algorithm is ours to choose, never the token's.
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    // Ours say `JWT`; another `typ` is a token meant for something else (RFC 8725 §3.11).
    if header.typ.is_some_and(|typ| typ != "JWT") {
        return Err(TokenError::Type);
    }
    // We understand no extension, so any `crit` must be refused.
    if header.crit.0 {
        return Err(TokenError::Critical);
    }
    let kid = header
        .kid
        .filter(|k| is_valid_kid(k))
        .ok_or(TokenError::UnknownKey)?;
    Ok(Unverified { raw, kid })
}

/// Whether `kid` looks like a Secrets Manager version id (or our local ids):
/// a path, URL or anything else never reaches a lookup.
pub fn is_valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Verifies the signature with `key` and decodes the claims.
///
/// [`inspect`] has already checked the shape and pinned the algorithm, so
/// this checks the HS256 signature over the first two parts (jsonwebtoken's
/// constant-time compare) and then decodes the payload once. Time, issuer and
/// audience are [`check_claims`]'s, against our own clock, in a fixed order.
pub fn verify_signature(token: &Unverified<'_>, key: &SigningKey) -> Result<Claims, TokenError> {
    // `jsonwebtoken::decode` would parse the header twice more, build a
    // validation set and deserialize the claims twice: most of verify's time.
    // The HMAC is checked with the key's precomputed state instead (same
    // algorithm, pinned above; the comparison is constant-time).
    let (message, signature) = token.raw.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut mac = [0u8; 32];
    let authentic = URL_SAFE_NO_PAD
        .decode_slice(signature, &mut mac)
        .is_ok_and(|len| len == mac.len())
        && key.verifies(message.as_bytes(), &mac);
    if !authentic {
        return Err(TokenError::Signature);
    }
    let (_, payload) = message.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| TokenError::Claims)
}

/// Time, issuer and audience checks.
pub fn check_claims(claims: &Claims, policy: &TokenPolicy, now: u64) -> Result<(), TokenError> {
    let leeway = policy.leeway_seconds;
    if now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if claims.iss != policy.issuer {
        return Err(TokenError::Issuer);
    }
    if policy.audience.is_some() && claims.aud != policy.audience {
        return Err(TokenError::Audience);
    }
    Ok(())
}

/// Signs `claims` with `key` (HS256, `typ: JWT`, `kid`). Deterministic.
pub fn sign(claims: &Claims, key: &SigningKey) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding())
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::{Value, json};

    const NOW: u64 = 1_800_000_000;

    fn key(kid: &str) -> SigningKey {
        SigningKey::new(kid, &SecretString::from("k".repeat(32) + kid)).unwrap()
    }

    fn policy() -> TokenPolicy {
        TokenPolicy::with_issuer("https://auth.test")
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://auth.test".into(),
            aud: None,
            sub: "0123456789abcdef".into(),
            sid: "default".into(),
            jti: "j1".into(),
            iat: NOW,
            nbf: None,
            exp: NOW + 7200,
            scope: "read".into(),
        }
    }

    /// Signs arbitrary JSON with arbitrary header fields, as a forger holding the key would.
    fn forge(header: Value, payload: Value, key: &SigningKey) -> String {
        use hmac_free::sign_raw;
        sign_raw(&header, &payload, key)
    }

    mod hmac_free {
        use super::*;
        // Builds the signing input by hand so that headers jsonwebtoken would
        // refuse to produce (alg "none", a path-like kid) can still be signed.
        pub fn sign_raw(header: &Value, payload: &Value, key: &SigningKey) -> String {
            let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
            let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
            let input = format!("{h}.{p}");
            let sig =
                jsonwebtoken::crypto::sign(input.as_bytes(), key.encoding(), Algorithm::HS256)
                    .unwrap();
            format!("{input}.{sig}")
        }
    }

    fn full_check(raw: &str, ring: &[SigningKey]) -> Result<Claims, TokenError> {
        let t = inspect(raw)?;
        let k = ring
            .iter()
            .find(|k| k.kid() == t.kid())
            .ok_or(TokenError::UnknownKey)?;
        let c = verify_signature(&t, k)?;
        check_claims(&c, &policy(), NOW)?;
        Ok(c)
    }

    #[test]
    fn a_signed_token_verifies_and_signing_is_deterministic() {
        let k = key("v1");
        let a = sign(&claims(), &k).unwrap();
        let b = sign(&claims(), &k).unwrap();
        assert_eq!(a, b);
        assert_eq!(full_check(&a, &[k]).unwrap(), claims());
    }

    #[test]
    fn header_is_hs256_jwt_with_kid() {
        let k = key("v1");
        let t = sign(&claims(), &k).unwrap();
        let h: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(h, json!({"typ": "JWT", "alg": "HS256", "kid": "v1"}));
    }

    #[test]
    fn oversized_tokens_are_rejected_before_parsing() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(inspect(&big).unwrap_err(), TokenError::TooLarge);
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b.c!",
            "e30.e30.",
            "bm90anNvbg.e30.c2ln",
        ] {
            assert_eq!(inspect(bad).unwrap_err(), TokenError::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn alg_none_is_rejected() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"v1"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let t = format!("{h}.{p}.c2ln");
        assert_eq!(inspect(&t).unwrap_err(), TokenError::Algorithm);
    }

    #[test]
    fn hs512_signed_with_the_real_key_is_rejected() {
        let k = key("v1");
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some("v1".into());
        let t = jsonwebtoken::encode(&header, &claims(), k.encoding()).unwrap();
        assert_eq!(full_check(&t, &[k]).unwrap_err(), TokenError::Algorithm);
    }

    #[test]
    fn a_typ_other_than_jwt_is_rejected() {
        let k = key("v1");
        let payload = serde_json::to_value(claims()).unwrap();
        for typ in ["at+jwt", "jwt", "JWS", "", "JWT "] {
            let header = json!({"alg": "HS256", "typ": typ, "kid": "v1"});
            let t = forge(header, payload.clone(), &k);
            assert_eq!(
                full_check(&t, std::slice::from_ref(&k)).unwrap_err(),
                TokenError::Type,
                "{typ:?}"
            );
        }
        let untyped = forge(json!({"alg": "HS256", "kid": "v1"}), payload, &k);
        assert!(full_check(&untyped, &[k]).is_ok(), "typ is optional");
    }

    #[test]
    fn a_crit_header_is_rejected_whatever_it_lists() {
        let k = key("v1");
        let payload = serde_json::to_value(claims()).unwrap();
        for crit in [json!(["exp"]), json!([]), json!(null), json!("b64")] {
            let header = json!({"alg": "HS256", "typ": "JWT", "kid": "v1", "crit": crit});
            let t = forge(header, payload.clone(), &k);
            assert_eq!(
                full_check(&t, std::slice::from_ref(&k)).unwrap_err(),
                TokenError::Critical,
                "{crit}"
            );
        }
    }

    #[test]
    fn header_checks_run_alg_then_typ_then_crit_then_kid() {
        let header = |h: &str| {
            let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
            format!("{}.{p}.c2ln", URL_SAFE_NO_PAD.encode(h))
        };
        for (h, expected) in [
            (
                r#"{"alg":"none","typ":"x","crit":[],"kid":"../x"}"#,
                TokenError::Algorithm,
            ),
            (
                r#"{"alg":"HS256","typ":"x","crit":[],"kid":"../x"}"#,
                TokenError::Type,
            ),
            (
                r#"{"alg":"HS256","typ":"JWT","crit":[],"kid":"../x"}"#,
                TokenError::Critical,
            ),
            (
                r#"{"alg":"HS256","typ":"JWT","kid":"../x"}"#,
                TokenError::UnknownKey,
            ),
        ] {
            assert_eq!(inspect(&header(h)).unwrap_err(), expected, "{h}");
        }
    }

    #[test]
    fn a_header_member_named_twice_is_malformed() {
        let k = key("v1");
        let payload = serde_json::to_value(claims()).unwrap();
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        for h in [
            r#"{"alg":"none","alg":"HS256","kid":"v1"}"#,
            r#"{"alg":"HS256","kid":"v1","kid":"v2"}"#,
            r#"{"alg":"HS256","typ":"JWT","typ":"JWT","kid":"v1"}"#,
            r#"{"alg":"HS256","crit":[],"crit":[],"kid":"v1"}"#,
        ] {
            let input = format!("{}.{p}", URL_SAFE_NO_PAD.encode(h));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), k.encoding(), Algorithm::HS256)
                .unwrap();
            let t = format!("{input}.{sig}");
            assert_eq!(
                full_check(&t, std::slice::from_ref(&k)).unwrap_err(),
                TokenError::Malformed,
                "{h}"
            );
        }
    }

    #[test]
    fn unknown_missing_and_path_like_kids_are_rejected() {
        let k = key("v1");
        let payload = serde_json::to_value(claims()).unwrap();
        for header in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "kid": "../../etc/passwd"}),
            json!({"alg": "HS256", "kid": "https://evil.example/k"}),
            json!({"alg": "HS256", "kid": ""}),
            json!({"alg": "HS256", "kid": 7}),
        ] {
            let t = forge(header.clone(), payload.clone(), &k);
            let err = full_check(&t, std::slice::from_ref(&k)).unwrap_err();
            assert!(
                matches!(err, TokenError::UnknownKey | TokenError::Malformed),
                "{header}: {err:?}"
            );
        }
        let t = forge(json!({"alg": "HS256", "kid": "v9"}), payload, &k);
        assert_eq!(full_check(&t, &[k]).unwrap_err(), TokenError::UnknownKey);
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let k = key("v1");
        let t = sign(&claims(), &k).unwrap();
        let mut other = claims();
        other.scope = "read write admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = t.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            full_check(&tampered, &[k]).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn a_swapped_header_fails_the_signature() {
        let (k1, k2) = (key("v1"), key("v2"));
        let t = sign(&claims(), &k1).unwrap();
        let other = sign(&claims(), &k2).unwrap();
        let swapped = format!(
            "{}.{}",
            other.split('.').next().unwrap(),
            t.split_once('.').unwrap().1
        );
        assert_eq!(
            full_check(&swapped, &[k1, k2]).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn a_signature_by_another_key_fails() {
        let t = sign(&claims(), &key("v1")).unwrap();
        let impostor = SigningKey::new("v1", &SecretString::from("z".repeat(40))).unwrap();
        assert_eq!(
            full_check(&t, &[impostor]).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn a_signature_cut_short_lengthened_or_reencoded_fails() {
        let k = key("v1");
        let t = sign(&claims(), &k).unwrap();
        assert!(full_check(&t, &[key("v1")]).is_ok());
        let (message, signature) = t.rsplit_once('.').unwrap();
        // The 43rd character's two low bits are spare: flipping one keeps the
        // same 32 bytes in a non-canonical text, which is not the signature.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.find(signature.chars().last().unwrap()).unwrap();
        let spare_bit_set = format!("{}{}", &signature[..42], &ALPHABET[(last ^ 1)..=(last ^ 1)]);
        for bad in [
            signature[..42].to_owned(),
            format!("{signature}AA"),
            URL_SAFE_NO_PAD.encode([0u8; 32]),
            spare_bit_set,
        ] {
            assert_eq!(
                full_check(&format!("{message}.{bad}"), &[key("v1")]).unwrap_err(),
                TokenError::Signature,
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_of_the_wrong_type_or_missing_are_rejected() {
        let k = key("v1");
        let header = json!({"alg": "HS256", "kid": "v1"});
        let mut as_string = serde_json::to_value(claims()).unwrap();
        as_string["exp"] = json!(NOW.to_string() + "0");
        let mut missing = serde_json::to_value(claims()).unwrap();
        missing.as_object_mut().unwrap().remove("exp");
        for payload in [as_string, missing, json!("not an object")] {
            let t = forge(header.clone(), payload, &k);
            assert_eq!(
                full_check(&t, std::slice::from_ref(&k)).unwrap_err(),
                TokenError::Claims
            );
        }
    }

    #[test]
    fn time_claims_are_checked_with_leeway() {
        let p = policy();
        let mut c = claims();
        c.exp = NOW - 30;
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::Expired));
        c.exp = NOW - 29;
        assert_eq!(check_claims(&c, &p, NOW), Ok(()));

        let mut c = claims();
        c.nbf = Some(NOW + 31);
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::NotYetValid));
        c.nbf = Some(NOW + 30);
        assert_eq!(check_claims(&c, &p, NOW), Ok(()));

        let mut c = claims();
        c.iat = NOW + 31;
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::IssuedInFuture));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Text that often looks like a token: three or so base64url parts.
        fn token_like() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_=+/.-]{0,80}",
                "[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{1,44}",
                "eyJ[A-Za-z0-9_-]{0,40}\\.eyJ[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_é-]{0,44}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn any_text_is_refused_with_a_token_error(raw in token_like()) {
                let k = key("v1");
                match inspect(&raw) {
                    Ok(t) => {
                        prop_assert!(is_valid_kid(t.kid()));
                        // Nobody but us can sign: random text never verifies.
                        prop_assert!(verify_signature(&t, &k).is_err());
                    }
                    Err(e) => prop_assert!(
                        !matches!(e, TokenError::Missing | TokenError::Revoked),
                        "{e:?}"
                    ),
                }
            }

            #[test]
            fn a_valid_token_with_one_character_changed_is_refused(
                at in 0..160usize,
                c in prop_oneof![any::<char>(), prop::sample::select(&['A', 'a', '0', '-', '_', '.', '='][..])],
            ) {
                let k = key("v1");
                let token = sign(&claims(), &k).unwrap();
                let mutated: String = token
                    .chars()
                    .enumerate()
                    .map(|(i, old)| if i == at % token.len() { c } else { old })
                    .collect();
                prop_assume!(mutated != token);
                prop_assert!(full_check(&mutated, &[k]).is_err());
            }

            #[test]
            fn a_valid_token_cut_or_extended_is_refused(
                cut in 1..160usize,
                tail in "[A-Za-z0-9_.=-]{0,4}",
            ) {
                let k = key("v1");
                let token = sign(&claims(), &k).unwrap();
                let kept: String = token.chars().take(token.len().saturating_sub(cut)).collect();
                let changed = format!("{kept}{tail}");
                prop_assume!(changed != token);
                prop_assert!(full_check(&changed, &[k]).is_err());
            }
        }
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let mut p = policy();
        let mut c = claims();
        c.iss = "https://evil.test".into();
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::Issuer));

        p.audience = Some("api".into());
        let mut c = claims();
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::Audience));
        c.aud = Some("other".into());
        assert_eq!(check_claims(&c, &p, NOW), Err(TokenError::Audience));
        c.aud = Some("api".into());
        assert_eq!(check_claims(&c, &p, NOW), Ok(()));
    }
}
