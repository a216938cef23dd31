//! The release `authctl serve`, built as it ships (where a panic used to
//! abort the process), under hostile requests: API keys of the right length
//! with a multi-byte character across each of their split points, sent to
//! every endpoint that takes a key as JSON, as a form and as HTTP Basic;
//! bodies that are not UTF-8, huge headers, too many fields, duplicated
//! members. Every answer must be a 4xx JSON error, the process must live
//! through all of them, and its log must never show a submitted key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

#[path = "../support/raw.rs"]
mod raw;
#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use raw::{Answer, Raw, get, post};
use support::{Authctl, Server};

/// Names the release binary; scripts/test sets it after `cargo build --release -p authctl`.
const RELEASE_BIN: &str = "AUTHCTL_RELEASE_BIN";

fn release_binary() -> PathBuf {
    let path = std::env::var_os(RELEASE_BIN).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{RELEASE_BIN} is not set: build with `cargo build --release -p authctl --locked` and \
             set {RELEASE_BIN}=target/release/authctl (scripts/test does both)"
        )
    });
    assert!(
        path.is_file(),
        "{RELEASE_BIN}={} is not a file",
        path.display()
    );
    path
}

/// Byte offsets where an API key is split into prefix, id, separator, secret,
/// separator and checksum (`bauth_` + 16 + `_` + 64 + `_` + 8 = 96 bytes).
const SPLITS: [usize; 5] = [6, 22, 23, 87, 88];

/// `key` with `c` written over it so that `c` straddles `split`, starting
/// `before` bytes ahead of it; still 96 bytes, still valid UTF-8.
fn straddling(key: &str, split: usize, c: char, before: usize) -> String {
    let start = split - before;
    let mut bytes = key.as_bytes().to_vec();
    let mut encoded = [0u8; 4];
    let encoded = c.encode_utf8(&mut encoded).as_bytes();
    bytes.splice(start..start + encoded.len(), encoded.iter().copied());
    let hostile = String::from_utf8(bytes).unwrap();
    assert_eq!(hostile.len(), key.len());
    hostile
}

fn hostile_keys(key: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for split in SPLITS {
        for c in ['é', 'ü', '€', '😀'] {
            for before in 1..c.len_utf8() {
                keys.push(straddling(key, split, c, before));
            }
        }
    }
    keys
}

/// Form-urlencoding: every byte but unreserved ones as %XX.
fn form_encode(text: &[u8]) -> String {
    text.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .map(|(n, v)| format!("{n}={}", form_encode(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// One endpoint that takes a key: where the key goes in JSON and forms, and the other fields.
struct Endpoint {
    path: &'static str,
    key_field: &'static str,
    others: Vec<(&'static str, String)>,
}

fn endpoints(key_id: &str) -> Vec<Endpoint> {
    let id = key_id.to_owned();
    vec![
        Endpoint {
            path: "/auth/login",
            key_field: "api_key",
            others: vec![],
        },
        Endpoint {
            path: "/auth/revoke",
            key_field: "api_key",
            others: vec![("session_id", "default".into())],
        },
        Endpoint {
            path: "/oauth2/token",
            key_field: "client_secret",
            others: vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", id.clone()),
            ],
        },
        Endpoint {
            path: "/oauth2/introspect",
            key_field: "client_secret",
            others: vec![("token", "abc".into()), ("client_id", id.clone())],
        },
        Endpoint {
            path: "/oauth2/revoke",
            key_field: "client_secret",
            others: vec![("token", "abc".into()), ("client_id", id)],
        },
    ]
}

/// Every way of sending `key` to `endpoint`: (what, request bytes).
fn carrying(endpoint: &Endpoint, key: &str, key_id: &str, host: &str) -> Vec<(String, Vec<u8>)> {
    let path = endpoint.path;
    let mut fields: Vec<(&str, &str)> = endpoint
        .others
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let mut object: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(n, v)| ((*n).to_owned(), json!(v)))
        .collect();
    object.insert(endpoint.key_field.to_owned(), json!(key));
    let json_body = Value::Object(object).to_string().into_bytes();
    // Basic carries the client id itself.
    let basic_fields: Vec<(&str, &str)> = fields
        .iter()
        .copied()
        .filter(|(n, _)| *n != "client_id")
        .collect();
    fields.push((endpoint.key_field, key));
    let basic = |user: &str, password: &str| {
        format!(
            "authorization: Basic {}\r\n",
            STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let form_ct = "application/x-www-form-urlencoded";
    vec![
        (
            format!("{path} as JSON"),
            post(path, host, "application/json", "", &json_body),
        ),
        (
            format!("{path} as a form"),
            post(path, host, form_ct, "", &form(&fields)),
        ),
        (
            format!("{path} as Basic, form-urlencoded first"),
            post(
                path,
                host,
                form_ct,
                &basic(key_id, &form_encode(key.as_bytes())),
                &form(&basic_fields),
            ),
        ),
        (
            format!("{path} as Basic, raw"),
            post(
                path,
                host,
                form_ct,
                &basic(key_id, key),
                &form(&basic_fields),
            ),
        ),
    ]
}

/// What went wrong with one hostile request, if anything.
fn judge(what: &str, answer: Option<Answer>, expected: Option<u16>) -> Option<String> {
    let Some(answer) = answer else {
        return Some(format!("{what}: no answer, the connection was dropped"));
    };
    let json = answer.json();
    let error = json.as_ref().and_then(|j| j["error"].as_str());
    let fine = (400..500).contains(&answer.status)
        && expected.is_none_or(|s| s == answer.status)
        && answer.header("content-type") == Some("application/json")
        && error.is_some();
    (!fine).then(|| {
        format!(
            "{what}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    })
}

/// Sends each request on a fresh connection; the problems found.
fn barrage(server: &Server, requests: Vec<(String, Vec<u8>, Option<u16>)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, request, expected) in requests {
        match Raw::try_open(server.port()) {
            Ok(mut raw) => problems.extend(judge(&what, raw.exchange(&request), expected)),
            Err(e) => {
                problems.push(format!("{what}: cannot connect ({e}): the server is gone"));
                break;
            }
        }
    }
    problems
}

fn other_hostile_requests(host: &str, key: &str) -> Vec<(String, Vec<u8>, Option<u16>)> {
    let json_ct = "application/json";
    let form_ct = "application/x-www-form-urlencoded";
    let mut requests = Vec::new();
    for path in [
        "/auth/login",
        "/auth/revoke",
        "/auth/verify",
        "/oauth2/token",
        "/oauth2/introspect",
    ] {
        requests.push((
            format!("{path}: JSON that is not UTF-8"),
            post(
                path,
                host,
                json_ct,
                "",
                b"{\"api_key\": \"\xff\xfe\xc3\", \"token\": \"\xe2\x82\"}",
            ),
            Some(400),
        ));
        requests.push((
            format!("{path}: a form that is not UTF-8"),
            post(path, host, form_ct, "", b"api_key=\xff\xfe&token=\xc3"),
            // Decoded with replacement characters: the key or token it
            // carries is then malformed (401) rather than the form (400).
            None,
        ));
        requests.push((
            format!("{path}: a form whose escapes are not UTF-8"),
            post(path, host, form_ct, "", b"api_key=%FF%FE%C3&token=%E2%82"),
            None,
        ));
        if path == "/auth/revoke" {
            // Revoke takes no Basic credentials, and an unknown token in
            // the body is a 200 no-op (RFC 7009).
            continue;
        }
        requests.push((
            format!("{path}: Basic that is not UTF-8"),
            post(
                path,
                host,
                form_ct,
                &format!(
                    "authorization: Basic {}\r\n",
                    STANDARD.encode(b"\xff\xfe:\xc3\x28")
                ),
                b"grant_type=client_credentials&token=abc",
            ),
            None,
        ));
    }
    let seventeen: Vec<String> = (0..17).map(|i| format!("f{i}=x")).collect();
    requests.push((
        "17 form fields".into(),
        post(
            "/auth/login",
            host,
            form_ct,
            "",
            seventeen.join("&").as_bytes(),
        ),
        Some(400),
    ));
    requests.push((
        "17 query parameters".into(),
        get(&format!("/auth/verify?{}", seventeen.join("&")), host),
        Some(400),
    ));
    requests.push((
        "a duplicated JSON member".into(),
        post(
            "/auth/login",
            host,
            json_ct,
            "",
            format!(r#"{{"api_key": "{key}", "api_key": "{key}"}}"#).as_bytes(),
        ),
        Some(400),
    ));
    requests.push((
        "a repeated form field".into(),
        post(
            "/auth/login",
            host,
            form_ct,
            "",
            &form(&[("api_key", key), ("api_key", key)]),
        ),
        Some(400),
    ));
    requests.push((
        "a 1 MiB header".into(),
        format!(
            "GET /auth/verify HTTP/1.1\r\nHost: {host}\r\nx-filler: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .into_bytes(),
        Some(431),
    ));
    requests.push((
        "a 64 KiB bearer token".into(),
        format!(
            "GET /auth/verify HTTP/1.1\r\nHost: {host}\r\nauthorization: Bearer {}\r\n\r\n",
            "é".repeat(32 * 1024)
        )
        .into_bytes(),
        Some(401),
    ));
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    requests.push((
        "200 headers".into(),
        format!("GET /auth/verify HTTP/1.1\r\nHost: {host}\r\n{many}\r\n").into_bytes(),
        Some(431),
    ));
    requests.push((
        "a request line that is not HTTP".into(),
        b"\xff\xfe\x00 / HTTP/1.1\r\n\r\n".to_vec(),
        Some(400),
    ));
    requests
}

#[test]
fn the_release_server_answers_hostile_requests_with_4xx_json_and_lives() {
    let authctl = Authctl::embedded_with(release_binary());
    let mut server = authctl.serve(&[]);
    let key = server.starter_key().expect("a starter key");
    let key_id = key
        .strip_prefix("bauth_")
        .and_then(|rest| rest.get(..16))
        .unwrap()
        .to_owned();
    let host = format!("127.0.0.1:{}", server.port());
    let hostile = hostile_keys(&key);
    assert_eq!(hostile.len(), 5 * 7);

    let mut requests = Vec::new();
    for endpoint in endpoints(&key_id) {
        for bad in &hostile {
            for (what, request) in carrying(&endpoint, bad, &key_id, &host) {
                requests.push((format!("{what}, key {bad:?}"), request, None));
            }
        }
    }
    requests.extend(other_hostile_requests(&host, &key));
    let count = requests.len();
    let problems = barrage(&server, requests);

    let alive = server.is_running();
    let log = server.log();
    // The middle of the secret is in every hostile key unchanged.
    let secret_middle = key.get(33..73).unwrap();
    let leaked: Vec<&String> = hostile
        .iter()
        .filter(|k| log.contains(k.as_str()))
        .collect();
    assert!(
        problems.is_empty() && alive,
        "{} of {count} hostile requests were not answered 4xx JSON{}:\n{}\n\nlog tail:\n{}",
        problems.len(),
        if alive { "" } else { ", and the process died" },
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        leaked.is_empty() && !log.contains(secret_middle),
        "the log shows a key: {leaked:?}"
    );
    assert!(!log.contains(&key), "the log shows the starter key");
    // Still answering: the real key logs in.
    let token = server.login(&key, "after-the-barrage");
    assert_eq!(server.verify(&token).0, 200);
}
