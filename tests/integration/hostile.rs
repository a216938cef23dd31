//! Requests an attacker writes: text that once crashed a parser, names given
//! twice, too many fields, long query strings, tokens with headers we do not
//! honour. Each gets its 4xx JSON answer, and the service keeps answering.

use auth_shared::domain::token::TokenError;
use auth_tests::{TestApp, TestResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::Method;
use serde_json::json;

use crate::errors::assert_error;
use crate::verify::{assert_invalid_token, claims_of, key_id, stolen_key};

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The routes that take an API key, and the fields each needs besides it.
const KEY_ROUTES: [(&str, &str); 5] = [
    ("/auth/login", ""),
    ("/auth/revoke", "session_id=s"),
    ("/oauth2/token", "grant_type=client_credentials"),
    ("/oauth2/introspect", "token=t"),
    ("/oauth2/revoke", "token=t"),
];

/// The JSON body and the form of a request to `path` presenting `key`:
/// as `api_key`, or as the OAuth2 `client_secret` of the key id `id`.
fn key_request(path: &str, extra: &str, id: &str, key: &str) -> (String, String) {
    let mut pairs: Vec<(&str, &str)> = extra.split_once('=').into_iter().collect();
    if path.starts_with("/oauth2/") {
        pairs.extend([("client_id", id), ("client_secret", key)]);
    } else {
        pairs.push(("api_key", key));
    }
    let json: serde_json::Map<_, _> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    let form: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", form_encoded(v)))
        .collect();
    (serde_json::Value::Object(json).to_string(), form.join("&"))
}

/// `api_key` of the right length with a two-byte character at each byte
/// offset where the parser splits it (around the prefix, the key id, the
/// secret and the checksum).
fn multi_byte_keys(real: &str) -> Vec<String> {
    let len = real.len();
    [5, 6, 21, 22, 23, 86, 87, 88, len - 2]
        .into_iter()
        .map(|at| {
            let mut bytes = real.as_bytes().to_vec();
            bytes.splice(at..at + 2, "é".bytes());
            let key = String::from_utf8(bytes).unwrap();
            assert_eq!(key.len(), len);
            key
        })
        .collect()
}

fn form_encoded(text: &str) -> String {
    text.replace('é', "%C3%A9")
}

async fn post(t: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
    t.request(Method::POST, path, headers, body).await
}

/// Asserts a 401 `invalid_client` that does not echo what was sent.
fn assert_invalid_client(r: &TestResponse, sent: &str, how: &str) {
    assert_error(r, 401, "invalid_client");
    assert!(!r.body.to_string().contains(sent), "{how}: {:?}", r.body);
}

#[tokio::test]
async fn a_multi_byte_api_key_is_401_invalid_client_on_every_route_as_json_form_and_basic() {
    let t = TestApp::spawn().await;
    let real = t.create_key("read").await;
    for key in multi_byte_keys(&real) {
        for (path, extra) in KEY_ROUTES {
            let (json, form) = key_request(path, extra, key_id(&real), &key);
            let r = post(&t, path, &[JSON], &json).await;
            assert_invalid_client(&r, &key, &format!("{path} as JSON with {key:?}"));
            let r = post(&t, path, &[FORM], &form).await;
            assert_invalid_client(&r, &key, &format!("{path} as a form with {key:?}"));
            if !path.starts_with("/oauth2/") {
                continue;
            }
            for secret in [key.clone(), form_encoded(&key)] {
                let basic = STANDARD.encode(format!("{}:{secret}", key_id(&real)));
                let auth = format!("Basic {basic}");
                let r = post(&t, path, &[FORM, ("authorization", &auth)], extra).await;
                assert_invalid_client(&r, &key, &format!("{path} by Basic with {secret:?}"));
                assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2\""));
            }
        }
    }
    let r = t.login(json!({"api_key": real})).await;
    assert_eq!(r.status, 200, "still answering: {:?}", r.body);
}

#[tokio::test]
async fn a_json_member_named_twice_is_400_invalid_request_at_any_depth() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let other = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    for (path, body) in [
        (
            "/auth/login",
            format!(r#"{{"api_key":"{other}","api_key":"{key}"}}"#),
        ),
        (
            "/auth/login",
            format!(r#"{{"api_key":"{key}","scope":"read","scope":"read"}}"#),
        ),
        (
            "/auth/login",
            format!(r#"{{"api_key":"{key}","x":{{"y":[{{"z":1,"z":2}}]}}}}"#),
        ),
        (
            "/auth/verify",
            format!(r#"{{"token":"{token}","token":"{token}"}}"#),
        ),
        (
            "/auth/revoke",
            format!(r#"{{"token":"x","token":"{token}"}}"#),
        ),
        (
            "/oauth2/token",
            format!(
                r#"{{"grant_type":"client_credentials","client_id":"{}","client_secret":"{key}","client_secret":"{key}"}}"#,
                key_id(&key)
            ),
        ),
    ] {
        let r = post(&t, path, &[JSON], &body).await;
        assert_error(&r, 400, "invalid_request");
        assert_eq!(
            r.body["error_description"], "the JSON body names a member twice",
            "{path}"
        );
    }
    // Nothing was revoked by the refused request.
    assert_eq!(t.verify(&token, None).await.status, 200);
}

#[tokio::test]
async fn a_form_of_17_fields_is_400_invalid_request_and_16_are_read() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let padding = |n: usize| (0..n).map(|i| format!("&pad{i}=x")).collect::<String>();
    let r = t.login_form(&format!("api_key={key}{}", padding(15))).await;
    assert_eq!(r.status, 200, "16 fields: {:?}", r.body);
    let r = t.login_form(&format!("api_key={key}{}", padding(16))).await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(
        r.body["error_description"],
        "the form body has more than 16 fields"
    );
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={key}{}",
        key_id(&key),
        padding(14)
    );
    let r = post(&t, "/oauth2/token", &[FORM], &form).await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn a_query_string_over_8_kib_or_16_fields_is_400_invalid_request() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let long = format!("/auth/verify?scope=read&pad={}", "x".repeat(9 * 1024));
    let many = format!("/auth/verify?scope=read{}", "&pad=x".repeat(16));
    let repeated = "/auth/verify?scope=read&scope=write".to_owned();
    for uri in [long, many, repeated] {
        let r = t.request(Method::GET, &uri, &headers, "").await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = t
        .request(Method::GET, "/auth/verify?scope=read", &headers, "")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_token_with_a_crit_header_or_another_typ_is_401_invalid_token() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    let stolen = stolen_key(&t).await;
    let claims = claims_of(&token);
    for typ in ["at+jwt", "JWS", "jwt"] {
        let mut header = stolen.header();
        header["typ"] = json!(typ);
        let forged = stolen.forge(&header, &claims);
        assert_invalid_token(&t.verify(&forged, None).await, TokenError::Type);
    }
    for crit in [json!(["exp"]), json!([])] {
        let mut header = stolen.header();
        header["crit"] = crit;
        let forged = stolen.forge(&header, &claims);
        assert_invalid_token(&t.verify(&forged, None).await, TokenError::Critical);
    }
    // The same claims under our own header are still good.
    assert_eq!(
        t.verify(&stolen.forge(&stolen.header(), &claims), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_unreadable_authorization_header_is_401_and_the_service_keeps_answering() {
    let t = TestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "default").await;
    for value in [
        "Bearer",
        "Bearer   ",
        "Bearer a b",
        "bearer é",
        "Bearer ===",
    ] {
        let r = t
            .request(Method::GET, "/auth/verify", &[("authorization", value)], "")
            .await;
        assert_invalid_token(&r, TokenError::Malformed);
    }
    let r = t
        .request(
            Method::GET,
            "/auth/verify",
            &[("authorization", "Digest a=b")],
            "",
        )
        .await;
    assert_invalid_token(&r, TokenError::Missing);
    let padded = format!("  BEARER \t {token}  ");
    let r = t
        .request(
            Method::GET,
            "/auth/verify",
            &[("authorization", &padded)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}
