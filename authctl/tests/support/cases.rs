//! The CLI checks both layers run, each on its own backend: managing keys
//! and sessions, refusing bad input, spacing rotations.

// Shared by the CLI test targets, each of which uses a part of it.
#![allow(dead_code)]

use auth_shared::domain::api_key::ApiKey;
use auth_shared::domain::rotation::rfc3339;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::Authctl;

/// A well-formed key id that names no key.
pub const NO_KEY: &str = "0123456789abcdef";

pub const EXIT_CODES: &str =
    "Exit codes: 0 success, 1 error, 2 bad usage, 3 not found, 4 backend unavailable";

pub fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

/// The stored hash of an API key: what a listing must never show either.
pub fn hash_of(api_key: &str) -> String {
    ApiKey::parse(api_key).unwrap().hash().0
}

/// Every key and session command on one backend, with a server on it to
/// show that each change is what the API sees.
pub fn keys_and_sessions_are_managed(authctl: &Authctl) {
    let created = authctl.ok(&[
        "keys",
        "create",
        "--name",
        "ci",
        "--scopes",
        "write  read",
        "--expires-in",
        "90d",
        "--json",
    ]);
    let created = created.json();
    let id = str_of(&created, "key_id").to_owned();
    let first = str_of(&created, "api_key").to_owned();
    assert!(first.starts_with(&format!("bauth_{id}_")), "{created}");
    assert_eq!(
        (str_of(&created, "name"), str_of(&created, "scopes")),
        ("ci", "read write"),
        "scopes are normalised"
    );
    assert_eq!(created.as_object().unwrap().len(), 4, "{created}");

    let text = authctl.ok(&["keys", "create", "--name", "ops", "--scopes", "read"]);
    assert!(text.stdout.contains("not shown again"), "{text:?}");
    assert!(text.stdout.contains("bauth_"), "{text:?}");

    let list = authctl.ok(&["keys", "list"]).stdout;
    for expected in [id.as_str(), "ci", "ops", "active", "read write"] {
        assert!(list.contains(expected), "{expected:?} not in {list}");
    }
    let shown = authctl.ok(&["keys", "show", &id]).stdout;
    assert!(shown.contains(&id) && shown.contains("ci"), "{shown}");
    let json_list = authctl.ok(&["keys", "list", "--json"]).stdout;
    for output in [&list, &shown, &json_list] {
        assert!(
            !output.contains("bauth_"),
            "a listing shows no key: {output}"
        );
        assert!(!output.contains(&hash_of(&first)), "nor a hash: {output}");
    }
    let shown = authctl.ok(&["keys", "show", &id, "--json"]).json();
    assert_eq!(
        (str_of(&shown, "status"), str_of(&shown, "scopes")),
        ("active", "read write")
    );
    let lifetime = shown["expires_at"].as_u64().unwrap() - shown["created_at"].as_u64().unwrap();
    assert_eq!(lifetime, 90 * 86_400);

    let server = authctl.serve(&[]);
    assert_eq!(server.starter_key(), None, "only an empty store gets one");

    let token = server.login(&first, "w1");
    let sessions = authctl.ok(&["sessions", "list", &id]).stdout;
    assert!(
        sessions.contains("w1") && sessions.contains("live"),
        "{sessions}"
    );
    assert!(!sessions.contains(&token), "a listing shows no token");
    let session = authctl.ok(&["sessions", "list", &id, "--json"]).json();
    assert_eq!(
        (str_of(&session, "session_id"), str_of(&session, "status")),
        ("w1", "live")
    );
    let revoked = authctl.ok(&["sessions", "revoke", &id, "w1"]);
    assert!(revoked.stdout.contains("Revoked session w1"), "{revoked:?}");
    assert_eq!(server.verify(&token).0, 401, "the next verify sees it");
    authctl
        .run(&["sessions", "revoke", &id, "w1"])
        .fails(3, "no session w1");

    let rotated = authctl
        .ok(&["keys", "rotate", &id, "--grace", "1h", "--json"])
        .json();
    let second = str_of(&rotated, "api_key").to_owned();
    assert_eq!(str_of(&rotated, "key_id"), id);
    assert_ne!(second, first, "a rotation issues a new secret");
    server.login(&first, "w2");
    server.login(&second, "w3");

    let cut = authctl.ok(&["keys", "rotate", &id, "--grace", "0"]).stdout;
    assert!(cut.contains("no longer works"), "{cut}");
    let third = cut
        .split_whitespace()
        .find(|w| w.starts_with("bauth_"))
        .unwrap()
        .to_owned();
    for old in [&first, &second] {
        let (status, body) = server.post("/auth/login", &json!({"api_key": old}));
        assert_eq!((status, str_of(&body, "error")), (401, "invalid_client"));
    }
    let live = server.login(&third, "w4");
    assert_eq!(server.verify(&live).0, 200);

    let revoked = authctl.ok(&["keys", "revoke", &id]).stdout;
    assert!(revoked.contains(&format!("Revoked key {id}")), "{revoked}");
    assert_eq!(server.verify(&live).0, 401, "its tokens stop at once");
    let (status, _) = server.post("/auth/login", &json!({"api_key": third}));
    assert_eq!(status, 401);
    let shown = authctl.ok(&["keys", "show", &id, "--json"]).json();
    assert_eq!(str_of(&shown, "status"), "revoked");
    assert!(authctl.ok(&["keys", "list"]).stdout.contains("revoked"));
    authctl
        .run(&["keys", "rotate", &id])
        .fails(1, &format!("key {id} is revoked"));
}

/// Bad input on one backend: the message a user reads and the exit code.
pub fn bad_input_is_refused(authctl: &Authctl) {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["keys", "show", NO_KEY], 3, "no key 0123456789abcdef"),
        (&["keys", "revoke", NO_KEY], 3, "no key 0123456789abcdef"),
        (&["keys", "rotate", NO_KEY], 3, "no key 0123456789abcdef"),
        (&["sessions", "list", NO_KEY], 3, "no key 0123456789abcdef"),
        (&["sessions", "revoke", NO_KEY, "s"], 3, "no key"),
        (&["keys", "show", "not-an-id"], 1, "is not a key id"),
        (
            &["keys", "create", "--name", "x", "--scopes", "read \"write"],
            1,
            "bad --scopes",
        ),
        (
            &["keys", "create", "--name", "x", "--scopes", " "],
            1,
            "bad --scopes",
        ),
        (
            &["keys", "create", "--name", " ", "--scopes", "read"],
            1,
            "--name must not be empty",
        ),
        (
            &[
                "keys",
                "create",
                "--name",
                "x",
                "--scopes",
                "read",
                "--expires-in",
                "soon",
            ],
            2,
            "invalid value 'soon' for '--expires-in <DURATION>'",
        ),
        (
            &["keys", "rotate", NO_KEY, "--grace", "1 fortnight"],
            2,
            "invalid value '1 fortnight' for '--grace <DURATION>'",
        ),
        (
            &[
                "keys",
                "create",
                "--name",
                "x",
                "--scopes",
                "read",
                "--expires-in",
                "20000years",
            ],
            2,
            "invalid value '20000years' for '--expires-in <DURATION>': at most 100 years",
        ),
        (
            &["keys", "rotate", NO_KEY, "--grace", "31d"],
            2,
            "invalid value '31d' for '--grace <DURATION>': at most 30 days",
        ),
        (
            &["keys", "create", "--scopes", "read"],
            2,
            "the following required arguments were not provided",
        ),
        (
            &[
                "keys", "create", "--name", "x", "--scopes", "read", "--owner", "a b",
            ],
            1,
            "bad --owner: owner must be 1-128 of A-Z a-z 0-9 . _ : @ -",
        ),
        (
            &[
                "keys", "create", "--name", "x", "--scopes", "read", "--meta", "[1]",
            ],
            1,
            "bad --meta: meta must be a JSON object",
        ),
        (
            &[
                "keys", "create", "--name", "x", "--scopes", "read", "--meta", "{",
            ],
            1,
            "bad --meta",
        ),
        (&["keys", "list", "--owner", ""], 1, "bad --owner"),
        (&["events", "--owner", "a b"], 1, "bad --owner"),
        (
            &["events", "0123456789abcdef", "--owner", "acme"],
            2,
            "cannot be used with",
        ),
        (&["keys", "frobnicate"], 2, "unrecognized subcommand"),
        (&["serve", "--addr", "localhost"], 2, "invalid value"),
    ];
    for (args, code, message) in cases {
        authctl.run(args).fails(*code, message);
    }
    let id = str_of(&authctl.create_key("x", "read"), "key_id").to_owned();
    authctl
        .run(&["sessions", "revoke", &id, "nope"])
        .fails(3, "no session nope");
    authctl
        .run(&["sessions", "revoke", &id, "no spaces"])
        .fails(1, "session");
}

/// A key made with an owner and metadata keeps both, shows them, and is
/// listed by its owner alone.
pub fn owners_and_metadata_are_kept_and_listed_by_owner(authctl: &Authctl) {
    let acme = authctl
        .ok(&[
            "keys",
            "create",
            "--name",
            "a",
            "--scopes",
            "read",
            "--owner",
            "acme:42",
            "--meta",
            r#"{"plan": "pro", "region": "eu"}"#,
            "--json",
        ])
        .json();
    let other = authctl.create_key("b", "read");
    let id = str_of(&acme, "key_id");
    let shown = authctl.ok(&["keys", "show", id, "--json"]).json();
    assert_eq!(shown["owner"], "acme:42", "{shown}");
    assert_eq!(
        shown["meta"],
        json!({"plan": "pro", "region": "eu"}),
        "{shown}"
    );
    let listed = authctl.ok(&["keys", "list", "--owner", "acme:42", "--json"]);
    let ids: Vec<String> = listed
        .stdout
        .lines()
        .map(|l| str_of(&serde_json::from_str(l).unwrap(), "key_id").to_owned())
        .collect();
    assert_eq!(ids, [id.to_owned()], "only acme's key: {listed:?}");
    let all = authctl.ok(&["keys", "list", "--json"]);
    assert!(all.stdout.contains(str_of(&other, "key_id")), "{all:?}");
    let unowned = authctl
        .ok(&["keys", "show", str_of(&other, "key_id"), "--json"])
        .json();
    assert_eq!(
        (&unowned["owner"], &unowned["meta"]),
        (&Value::Null, &Value::Null)
    );
}

/// A key's name, scopes, metadata and expiry change through `keys update`,
/// and every change (and none for a change of nothing) is in its events.
pub fn keys_are_updated_and_each_change_is_in_their_events(authctl: &Authctl) {
    let created = authctl.create_key("before", "read write");
    let id = str_of(&created, "key_id").to_owned();
    let updated = authctl
        .ok(&[
            "keys",
            "update",
            &id,
            "--name",
            "after",
            "--scopes",
            "read",
            "--meta",
            r#"{"plan": "pro"}"#,
            "--expires-in",
            "30d",
            "--json",
        ])
        .json();
    assert_eq!(updated["name"], "after", "{updated}");
    assert_eq!(updated["scopes"], "read", "{updated}");
    assert_eq!(updated["meta"], json!({"plan": "pro"}), "{updated}");
    assert!(updated["expires_at"].as_u64().is_some(), "{updated}");
    let same = authctl.ok(&["keys", "update", &id, "--name", "after"]);
    assert!(same.stdout.contains("nothing changed"), "{same:?}");
    let cleared = authctl
        .ok(&[
            "keys",
            "update",
            &id,
            "--clear-meta",
            "--no-expiry",
            "--json",
        ])
        .json();
    assert_eq!(
        (&cleared["meta"], &cleared["expires_at"]),
        (&Value::Null, &Value::Null)
    );
    authctl.ok(&["keys", "revoke", &id]);
    authctl
        .run(&["keys", "update", &id, "--name", "x"])
        .fails(1, "is revoked");

    let listed = authctl.ok(&["events", &id, "--json"]);
    let events: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = events.iter().map(|e| str_of(e, "action")).collect();
    assert_eq!(
        actions,
        ["key.revoked", "key.updated", "key.updated", "key.created"],
        "{listed:?}"
    );
    assert_eq!(
        events[2]["changes"]["scopes"],
        json!({"old": "read write", "new": "read"})
    );
    assert_eq!(events[0]["actor"]["kind"], "cli");
    assert!(str_of(&events[0]["actor"], "id").contains('@'), "user@host");
    let text = authctl.ok(&["events", &id]);
    assert!(text.stdout.contains("key.revoked"), "{text:?}");
    authctl
        .run(&["events", NO_KEY])
        .fails(3, "no key 0123456789abcdef");
}

/// A second rotation this soon is refused with exit 1, saying when it may run.
pub fn a_second_rotation_is_refused_until(authctl: &Authctl, allowed_from: u64) {
    let refused = authctl.run(&["rotate-signing-key"]);
    refused.fails(
        1,
        &format!("the next rotation may run from {}", rfc3339(allowed_from)),
    );
    assert!(refused.stderr.contains("--force"), "{refused:?}");
}

/// `--force` rotates at once and says what it breaks.
pub fn a_forced_rotation_warns_what_it_breaks(authctl: &Authctl) {
    let forced = authctl.ok(&["rotate-signing-key", "--force"]);
    assert!(forced.stdout.contains("New signing key"), "{forced:?}");
    assert!(
        forced
            .stderr
            .contains("no longer verifies; tokens it signed are refused"),
        "{forced:?}"
    );
}

/// `rotate-signing-key` is one `signing_key.rotated` event in the audit
/// trail, as `GET /admin/v1/events` shows it: by the operator (`cli`,
/// `user@host`), naming the kid it replaced and the new one, never a key.
pub fn a_signing_key_rotation_is_in_the_audit_trail_as_the_operators(authctl: &Authctl) {
    let auditor = authctl.create_key("auditor", "admin:audit:read");
    let server = authctl.serve(&[("SIGNING_KEY_CACHE_SECONDS", "0")]);
    let token = server.login(str_of(&auditor, "api_key"), "audit");
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let old = str_of(&header, "kid").to_owned();

    let rotated = authctl.ok(&["rotate-signing-key"]).stdout;
    let new = rotated
        .strip_prefix("New signing key ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no kid in {rotated}"));
    let auth = format!("Bearer {token}");
    let (status, body) = server.request("GET", "/admin/v1/events", &[("authorization", &auth)], "");
    assert_eq!(status, 200, "{body}");
    let events: Vec<&Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signing_key.rotated")
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["actor"]["kind"], "cli");
    assert!(str_of(&events[0]["actor"], "id").contains('@'), "user@host");
    assert_eq!(
        events[0]["changes"],
        json!({"kid": {"old": old, "new": new}})
    );
    assert_eq!(events[0]["key_id"], Value::Null);

    // authctl itself lists it too: it is in the whole trail, not any key's or owner's.
    let all = authctl.ok(&["events", "--json"]).stdout;
    let rotations: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "signing_key.rotated")
        .collect();
    assert_eq!(rotations.len(), 1, "{all}");
    assert_eq!(rotations[0]["changes"], events[0]["changes"]);
    let owners = authctl.ok(&["events", "--owner", "acme", "--json"]).stdout;
    assert!(!owners.contains("signing_key.rotated"), "{owners}");
}
