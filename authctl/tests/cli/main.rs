//! `authctl` as a user runs it: the real binary (cargo builds it for these
//! tests), its output and exit codes on the embedded store, and `authctl
//! serve` driven over real HTTP. Every test has its own data dir and its own
//! server on a free port; the same checks on DynamoDB are in `cli_aws`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

#[path = "../support/cases.rs"]
mod cases;
#[path = "../support/raw.rs"]
mod raw;
mod serve_limits;
#[path = "../support/mod.rs"]
mod support;

use std::process::Command;

use serde_json::{Value, json};

use cases::{
    EXIT_CODES, a_forced_rotation_warns_what_it_breaks, a_second_rotation_is_refused_until,
    a_signing_key_rotation_is_in_the_audit_trail_as_the_operators, bad_input_is_refused,
    keys_and_sessions_are_managed, keys_are_updated_and_each_change_is_in_their_events,
    owners_and_metadata_are_kept_and_listed_by_owner, str_of,
};
use support::{Authctl, Run, authctl_path, output};

#[test]
fn every_command_has_help_that_ends_with_the_exit_codes() {
    let authctl = Authctl::embedded();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keys", "--help"],
        &["keys", "create", "--help"],
        &["keys", "list", "--help"],
        &["keys", "show", "--help"],
        &["keys", "revoke", "--help"],
        &["keys", "rotate", "--help"],
        &["keys", "update", "--help"],
        &["events", "--help"],
        &["sessions", "--help"],
        &["sessions", "list", "--help"],
        &["sessions", "revoke", "--help"],
        &["setup", "--help"],
        &["rotate-signing-key", "--help"],
    ] {
        let run = authctl.ok(args);
        assert!(run.stdout.contains("Usage: authctl"), "{args:?}: {run:?}");
        assert!(run.stdout.contains(EXIT_CODES), "{args:?}: {run:?}");
    }
    assert!(!authctl.data_dir().exists(), "help writes nothing");
}

#[test]
fn keys_and_sessions_are_managed_on_the_embedded_store() {
    let authctl = Authctl::embedded();
    keys_and_sessions_are_managed(&authctl);
    assert!(authctl.data_dir().join("auth.db").exists());
}

#[test]
fn bad_input_gets_a_clear_message_and_a_scriptable_exit_code() {
    let authctl = Authctl::embedded();
    bad_input_is_refused(&authctl);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    authctl
        .run(&["serve", "--addr", &addr])
        .fails(1, &format!("cannot listen on {addr}"));
}

#[test]
fn the_data_dir_defaults_to_dot_data_in_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(authctl_path());
        command
            .current_dir(cwd.path())
            .args(args)
            .env_remove("TABLE_NAME")
            .env_remove("SIGNING_SECRET_ARN");
        output(command)
    };
    let created: Run = run(&[
        "keys", "create", "--name", "d", "--scopes", "read", "--json",
    ]);
    assert_eq!(created.code, 0, "{created:?}");
    assert!(cwd.path().join(".data").join("auth.db").exists());
    let id = str_of(&created.json(), "key_id").to_owned();
    assert!(run(&["keys", "list"]).stdout.contains(&id));
}

#[test]
fn serve_prints_a_starter_key_that_logs_in_verifies_and_revokes() {
    let authctl = Authctl::embedded();
    let server = authctl.serve(&[]);
    for route in ["/auth/login", "/auth/verify", "/auth/revoke"] {
        assert!(
            server
                .printed
                .contains(&format!("curl -s {}{route}", server.base))
                || server
                    .printed
                    .contains(&format!("curl -s -X POST {}{route}", server.base)),
            "a curl line for {route}: {}",
            server.printed
        );
    }
    let starter = server.starter_key().expect("a starter key");
    assert!(
        server.printed.contains(&format!(
            "Console: {0}/console/\nMetrics: {0}/metrics\nlistening on",
            server.base
        )),
        "the console's and the metrics' addresses, before the listening line: {}",
        server.printed
    );
    let console = server.console_key().expect("a console key");
    let token = server.login(&console, "console");
    let (status, body) = server.verify(&token);
    assert_eq!(
        (status, str_of(&body, "scope")),
        (
            200,
            "admin:audit:read admin:keys:read admin:keys:write admin:portal"
        ),
        "the console key holds every admin scope"
    );

    let token = server.login(&starter, "default");
    let (status, body) = server.verify(&token);
    assert_eq!((status, str_of(&body, "scope")), (200, "read write"));
    let (status, body) = server.verify_scope(&token, Some("admin"));
    assert_eq!(
        (status, str_of(&body, "error")),
        (403, "insufficient_scope"),
        "the query string reaches the handler"
    );
    let (status, _) = server.request(
        "POST",
        "/auth/revoke",
        &[("authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        server.verify(&token).0,
        401,
        "a revoke is seen by the next verify"
    );

    let oversized = format!("{{\"api_key\": \"{}\"}}", "a".repeat(20_000));
    let (status, body) = server.request(
        "POST",
        "/auth/login",
        &[("content-type", "application/json")],
        &oversized,
    );
    assert_eq!((status, str_of(&body, "error")), (413, "invalid_request"));
    assert_eq!(server.request("GET", "/nowhere", &[], "").0, 404);

    // A second process manages keys while the server runs on the same data dir.
    let late = authctl.create_key("late", "read");
    let token = server.login(str_of(&late, "api_key"), "w1");
    assert_eq!(server.verify(&token).0, 200);

    drop(server);
    let restarted = authctl.serve(&[]);
    assert_eq!(
        restarted.starter_key(),
        None,
        "the starter key is made once"
    );
    assert!(
        restarted.printed.contains("Console: "),
        "the console's address, on every start"
    );
    let token = restarted.login(str_of(&late, "api_key"), "w2");
    assert_eq!(restarted.verify(&token).0, 200, "keys survive a restart");
    let token = restarted.login(&starter, "again");
    assert_eq!(restarted.verify(&token).0, 200);
}

#[test]
fn serve_stops_cleanly_on_ctrl_c_and_on_sigterm() {
    let authctl = Authctl::embedded();
    for signal in ["INT", "TERM"] {
        let server = authctl.serve(&[]);
        let key = authctl.create_key("k", "read");
        let token = server.login(str_of(&key, "api_key"), signal);
        assert_eq!(server.verify(&token).0, 200);
        let (status, printed) = server.stop(signal);
        assert!(status.success(), "SIG{signal}: {status:?} {printed}");
        assert!(printed.ends_with("stopped\n"), "SIG{signal}: {printed}");
    }
}

/// The spacing of two local rotations at the default settings:
/// TOKEN_TTL_SECONDS + SIGNING_KEY_CACHE_SECONDS (5 s locally) + CLOCK_LEEWAY_SECONDS.
const LOCAL_SPACING: u64 = 7200 + 5 + 30;

/// The local key file as JSON.
fn key_file(authctl: &Authctl) -> (std::path::PathBuf, Value) {
    let path = authctl.data_dir().join("signing-keys.json");
    let file = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, file)
}

#[test]
fn rotating_the_local_signing_key_keeps_live_tokens_valid() {
    let authctl = Authctl::embedded();
    let server = authctl.serve(&[("SIGNING_KEY_CACHE_SECONDS", "0")]);
    let key = authctl.create_key("k", "read");
    let key = str_of(&key, "api_key");
    let before = server.login(key, "s1");
    let rotated = authctl.ok(&["rotate-signing-key"]).stdout;
    assert!(rotated.contains("New signing key local-"), "{rotated}");
    assert_eq!(
        server.verify(&before).0,
        200,
        "the previous key still verifies"
    );
    assert_eq!(
        server.login(key, "s1"),
        before,
        "the session keeps its token"
    );
    let after = server.login(key, "s2");
    assert_ne!(
        after.split('.').next(),
        before.split('.').next(),
        "new tokens name the new kid"
    );

    let made = key_file(&authctl).1["current"]["created_at"]
        .as_u64()
        .unwrap();
    a_second_rotation_is_refused_until(&authctl, made + LOCAL_SPACING);
    assert_eq!(
        server.verify(&before).0,
        200,
        "a refused rotation changes nothing"
    );

    a_forced_rotation_warns_what_it_breaks(&authctl);
    assert_eq!(
        server.verify(&before).0,
        401,
        "two rotations later its key is gone"
    );
    assert_eq!(server.verify(&after).0, 200);
}

#[test]
fn a_local_rotation_is_allowed_once_a_token_lifetime_has_passed() {
    let authctl = Authctl::embedded();
    authctl.create_key("k", "read");
    authctl.ok(&["rotate-signing-key"]);
    // The current key as if made one spacing ago.
    let (path, mut file) = key_file(&authctl);
    let made = file["current"]["created_at"].as_u64().unwrap();
    file["current"]["created_at"] = json!(made - LOCAL_SPACING);
    std::fs::write(&path, file.to_string()).unwrap();
    let rotated = authctl.ok(&["rotate-signing-key"]);
    assert!(rotated.stderr.is_empty(), "no warning: {rotated:?}");
}

#[test]
fn rotate_signing_key_help_says_what_force_breaks() {
    let help = Authctl::embedded()
        .ok(&["rotate-signing-key", "--help"])
        .stdout;
    for expected in [
        "TOKEN_TTL_SECONDS + SIGNING_KEY_CACHE_SECONDS + CLOCK_LEEWAY_SECONDS",
        "--force",
        "tokens signed by the key that drops out stop verifying",
    ] {
        assert!(help.contains(expected), "{expected:?} not in {help}");
    }
}

#[test]
fn the_signing_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let authctl = Authctl::embedded();
    authctl.serve(&[]);
    let file = authctl.data_dir().join("signing-keys.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let keys: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(str_of(&keys["current"], "key").len() >= 64, "256 bits, hex");
}

#[test]
fn owners_and_metadata_are_kept_and_listed_by_owner_on_the_embedded_store() {
    owners_and_metadata_are_kept_and_listed_by_owner(&Authctl::embedded());
}

#[test]
fn keys_are_updated_and_each_change_is_in_their_events_on_the_embedded_store() {
    keys_are_updated_and_each_change_is_in_their_events(&Authctl::embedded());
}

#[test]
fn a_local_rotation_is_in_the_audit_trail_as_the_operators() {
    a_signing_key_rotation_is_in_the_audit_trail_as_the_operators(&Authctl::embedded());
}
