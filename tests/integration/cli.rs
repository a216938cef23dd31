//! `authctl` as a user runs it: the real binary, its output and exit codes,
//! on the embedded store and on DynamoDB (moto), and `authctl serve` driven
//! over real HTTP. Every test has its own data dir or table and its own
//! server on a free port.

mod hostile_release;
mod raw;
mod serve_limits;
mod support;

use std::process::Command;

use auth_shared::domain::api_key::ApiKey;
use auth_shared::domain::rotation::rfc3339;
use serde_json::{Value, json};

use support::{Authctl, Run, authctl_path, output};

/// A well-formed key id that names no key.
const NO_KEY: &str = "0123456789abcdef";

const EXIT_CODES: &str =
    "Exit codes: 0 success, 1 error, 2 bad usage, 3 not found, 4 backend unavailable";

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

/// The stored hash of an API key: what a listing must never show either.
fn hash_of(api_key: &str) -> String {
    ApiKey::parse(api_key).unwrap().hash().0
}

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

/// Every key and session command on one backend, with a server on it to
/// show that each change is what the API sees.
fn keys_and_sessions_are_managed(authctl: &Authctl) {
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

#[test]
fn keys_and_sessions_are_managed_on_the_embedded_store() {
    let authctl = Authctl::embedded();
    keys_and_sessions_are_managed(&authctl);
    assert!(authctl.data_dir().join("auth.db").exists());
}

#[test]
fn keys_and_sessions_are_managed_on_dynamodb() {
    let authctl = Authctl::dynamodb();
    keys_and_sessions_are_managed(&authctl);
    assert!(
        !authctl.data_dir().exists(),
        "nothing was written to the embedded store"
    );
}

/// Bad input on one backend: the message a user reads and the exit code.
fn bad_input_is_refused(authctl: &Authctl) {
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
fn bad_input_gets_the_same_answers_on_dynamodb() {
    bad_input_is_refused(&Authctl::dynamodb());
}

#[test]
fn an_unreachable_backend_exits_4_and_says_why() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let authctl = Authctl::embedded();
    for args in [
        &["--table", "nowhere", "keys", "list"][..],
        &["--table", "nowhere", "keys", "show", NO_KEY],
        &["--table", "nowhere", "setup"],
    ] {
        let mut command = authctl.command(args);
        command.env("AWS_ENDPOINT_URL", &endpoint);
        let run = output(command);
        run.fails(4, "unavailable");
        assert!(
            run.stderr.to_lowercase().contains("connect"),
            "the reason is shown: {run:?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run:?}");
    }
}

#[test]
fn an_unknown_table_is_named_in_the_error() {
    let authctl = Authctl::embedded();
    let table = auth_tests::unique("missing");
    let run = authctl.run(&["--table", &table, "keys", "list"]);
    run.fails(4, "the store is unavailable");
    assert!(run.stderr.contains("ResourceNotFoundException"), "{run:?}");
    assert!(
        run.stderr.contains(&format!("(DynamoDB table {table})")),
        "{run:?}"
    );
}

#[test]
fn setup_creates_the_table_and_secret_once_and_keeps_them_on_a_rerun() {
    let authctl = Authctl::dynamodb();
    let table = authctl.table().unwrap().to_owned();
    let arn = authctl.env("SIGNING_SECRET_ARN").unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:secretsmanager:"), "{arn}");
    let again = authctl.ok(&["setup"]);
    assert_eq!(
        again.stdout,
        format!("TABLE_NAME={table}\nSIGNING_SECRET_ARN={arn}\n")
    );
    assert!(again.stderr.contains("exists; keeping it"), "{again:?}");

    Authctl::embedded()
        .run(&["setup"])
        .fails(1, "setup needs --table NAME");
}

#[tokio::test]
async fn setup_refuses_an_existing_secret_that_holds_no_signing_key() {
    let name = auth_tests::unique("not-a-key");
    aws_sdk_secretsmanager::Client::new(&auth_tests::moto().await)
        .create_secret()
        .name(&name)
        .secret_string(r#"{"password": "hunter2"}"#)
        .send()
        .await
        .unwrap();
    let table = auth_tests::unique("cli");
    let run = tokio::task::spawn_blocking(move || {
        Authctl::embedded().run(&["setup", "--table", &table, "--secret-name", &name])
    })
    .await
    .unwrap();
    run.fails(1, "exists but holds no signing key");
    assert!(!run.stderr.contains("hunter2"), "{run:?}");
}

/// What `authctl setup` and the test harness stand on: a CreateTable that is
/// retried after its first attempt landed is told the table exists.
#[tokio::test]
async fn creating_a_table_that_exists_keeps_it_and_its_ttl() {
    use auth_shared::aws::dynamodb::create_table;
    use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
    let client = aws_sdk_dynamodb::Client::new(&auth_tests::moto().await);
    let table = auth_tests::unique("twice");
    create_table(&client, &table).await.unwrap();
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("p".into()))
        .item("sk", AttributeValue::S("s".into()))
        .send()
        .await
        .unwrap();
    create_table(&client, &table).await.unwrap();
    let items = client.scan().table_name(&table).send().await.unwrap();
    assert_eq!(items.count(), 1, "the table was kept");
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
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

/// A second rotation this soon is refused with exit 1, saying when it may run.
fn a_second_rotation_is_refused_until(authctl: &Authctl, allowed_from: u64) {
    let refused = authctl.run(&["rotate-signing-key"]);
    refused.fails(
        1,
        &format!("the next rotation may run from {}", rfc3339(allowed_from)),
    );
    assert!(refused.stderr.contains("--force"), "{refused:?}");
}

/// `--force` rotates at once and says what it breaks.
fn a_forced_rotation_warns_what_it_breaks(authctl: &Authctl) {
    let forced = authctl.ok(&["rotate-signing-key", "--force"]);
    assert!(forced.stdout.contains("New signing key"), "{forced:?}");
    assert!(
        forced
            .stderr
            .contains("no longer verifies; tokens it signed are refused"),
        "{forced:?}"
    );
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
fn rotating_the_signing_key_on_dynamodb_is_spaced_and_can_be_forced() {
    let authctl = Authctl::dynamodb();
    let first = authctl.ok(&["rotate-signing-key"]);
    assert!(first.stdout.contains("New signing key"), "{first:?}");
    let made = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = aws_sdk_secretsmanager::Client::new(&auth_tests::moto().await);
        let current = client
            .get_secret_value()
            .secret_id(authctl.env("SIGNING_SECRET_ARN").unwrap())
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        u64::try_from(current.created_date().unwrap().secs()).unwrap()
    });
    // The Lambdas' default key cache: 300 s.
    a_second_rotation_is_refused_until(&authctl, made + 7200 + 300 + 30);
    a_forced_rotation_warns_what_it_breaks(&authctl);
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
