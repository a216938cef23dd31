//! What a client sees and what a thief holds: the assertions of the error
//! table and of a refused token, the parts of an API key and of a token, and
//! tokens forged with a stolen signing key.

use auth_shared::domain::token::TokenError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use base64::engine::general_purpose::STANDARD;
use lambda_http::http::Method;

use crate::{TestApp, TestResponse};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The key id part of an API key (`bauth_<id>_<secret>_<checksum>`).
pub fn key_id(api_key: &str) -> &str {
    &api_key["bauth_".len().."bauth_".len() + 16]
}

/// The secret part of an API key.
pub fn key_secret(api_key: &str) -> &str {
    let start = "bauth_".len() + 16 + 1;
    &api_key[start..start + 64]
}

/// The signing key in force, as someone who read it out of Secrets Manager holds it.
#[derive(Debug, Clone)]
pub struct StolenKey {
    /// The `kid` (in Secrets Manager, the AWSCURRENT version id).
    pub kid: String,
    /// The HMAC key.
    pub secret: String,
}

impl StolenKey {
    /// The header our tokens carry, with this key's kid.
    pub fn header(&self) -> Value {
        json!({"alg": "HS256", "typ": "JWT", "kid": self.kid})
    }

    /// `base64url(header).base64url(claims)`, HS256-signed with the real key,
    /// whatever the header and claims say.
    pub fn forge(&self, header: &Value, claims: &Value) -> String {
        self.forge_with(Algorithm::HS256, header, claims)
    }

    /// As [`Self::forge`], signed with `alg` (still the real key).
    pub fn forge_with(&self, alg: Algorithm, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let key = EncodingKey::from_secret(self.secret.as_bytes());
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
        format!("{input}.{signature}")
    }
}

/// base64url (no padding) of a JSON value.
pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The decoded claims of a token, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Asserts the `invalid_token` 401 of the error table in README.md, refused for `reason`.
pub fn assert_invalid_token(r: &TestResponse, reason: TokenError) {
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.body["active"], false, "{:?}", r.body);
    assert_eq!(r.error(), "invalid_token");
    assert_eq!(
        r.body["error_description"],
        reason.to_string(),
        "{:?}",
        r.body
    );
    assert!(
        r.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{:?}",
        r.body
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

/// Asserts the error body of the error table in README.md: `error`,
/// `error_description`, `request_id`, as JSON.
pub fn assert_error(r: &TestResponse, status: u16, code: &str) {
    assert_eq!((r.status, r.error()), (status, code), "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{:?}",
        r.body
    );
    assert!(
        r.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{:?}",
        r.body
    );
}

/// The Basic credentials of an API key: its id as user, the key as password.
pub fn basic(api_key: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{api_key}", key_id(api_key)))
    )
}

/// POSTs a form, with `auth` as the authorization header.
pub async fn post_form(t: &TestApp, path: &str, auth: Option<&str>, form: &str) -> TestResponse {
    let mut headers = vec![FORM];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    t.request(Method::POST, path, &headers, form).await
}

/// `POST /oauth2/introspect` of `token`, authenticated as `caller`.
pub async fn introspect(t: &TestApp, caller: &str, token: &str) -> TestResponse {
    post_form(
        t,
        "/oauth2/introspect",
        Some(&basic(caller)),
        &format!("token={token}"),
    )
    .await
}

/// Asserts a 200 login response as README.md's `POST /auth/login` shows it
/// and returns its token.
pub fn issued(r: &TestResponse, expires_in: u64, scope: &str, session_id: &str) -> String {
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer", "{:?}", r.body);
    assert_eq!(r.body["expires_in"], expires_in, "{:?}", r.body);
    assert_eq!(r.body["scope"], scope, "{:?}", r.body);
    assert_eq!(r.body["session_id"], session_id, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.token();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    token
}
