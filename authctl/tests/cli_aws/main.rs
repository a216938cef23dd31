//! `authctl` on DynamoDB and Secrets Manager (moto): the same key, session
//! and bad-input checks as on the embedded store, `setup`, rotation in
//! Secrets Manager, and a backend that is down or missing. Built only with
//! the `moto` feature; `scripts/test` starts moto and runs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

#[path = "../support/cases.rs"]
mod cases;
#[path = "../support/mod.rs"]
mod support;

use cases::{
    NO_KEY, a_forced_rotation_warns_what_it_breaks, a_second_rotation_is_refused_until,
    a_signing_key_rotation_is_in_the_audit_trail_as_the_operators, bad_input_is_refused,
    keys_and_sessions_are_managed, keys_are_updated_and_each_change_is_in_their_events,
    owners_and_metadata_are_kept_and_listed_by_owner,
};
use support::{Authctl, output};

#[test]
fn keys_and_sessions_are_managed_on_dynamodb() {
    let authctl = Authctl::dynamodb();
    keys_and_sessions_are_managed(&authctl);
    assert!(
        !authctl.data_dir().exists(),
        "nothing was written to the embedded store"
    );
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
    aws_sdk_secretsmanager::Client::new(&auth_tests::aws::moto().await)
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
    let client = aws_sdk_dynamodb::Client::new(&auth_tests::aws::moto().await);
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
fn rotating_the_signing_key_on_dynamodb_is_spaced_and_can_be_forced() {
    let authctl = Authctl::dynamodb();
    let first = authctl.ok(&["rotate-signing-key"]);
    assert!(first.stdout.contains("New signing key"), "{first:?}");
    let made = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = aws_sdk_secretsmanager::Client::new(&auth_tests::aws::moto().await);
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
fn owners_and_metadata_are_kept_and_listed_by_owner_on_dynamodb() {
    owners_and_metadata_are_kept_and_listed_by_owner(&Authctl::dynamodb());
}

#[test]
fn keys_are_updated_and_each_change_is_in_their_events_on_dynamodb() {
    keys_are_updated_and_each_change_is_in_their_events(&Authctl::dynamodb());
}

#[test]
fn a_rotation_on_dynamodb_is_in_the_audit_trail_as_the_operators() {
    a_signing_key_rotation_is_in_the_audit_trail_as_the_operators(&Authctl::dynamodb());
}
