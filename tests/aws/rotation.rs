//! Signing-key rotation: the rotation handler's four steps against moto
//! (called directly: moto cannot invoke a Lambda), the spacing between two
//! rotations, the audit event each rotation writes, and the whole story of
//! tokens across two rotations in a warm and a cold Lambda environment. The rotator reads the test's manual clock,
//! so "later" is a clock setting, never a sleep.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auth_shared::App;
use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_shared::aws::rotation::{RotationError, RotationEvent, Rotator, Step, Trail};
use auth_shared::aws::secrets::SecretsManagerKeySource;
use auth_shared::domain::audit::Actor;
use auth_shared::domain::rotation::{Pace, Spacing, rfc3339};
use auth_shared::http::{self, Route};
use auth_tests::aws::AwsTestApp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Body;
use lambda_http::http::Method;
use serde_json::{Value, json};

fn spacing(t: &AwsTestApp) -> Spacing {
    Spacing::of(&t.config())
}

fn rotator(t: &AwsTestApp) -> Rotator {
    Rotator::new(secrets(t), spacing(t)).with_clock(t.clock.clone())
}

/// The rotation function's trail on this test's table, as its Lambda builds it.
fn trail(t: &AwsTestApp) -> Trail {
    Trail::of_function(t.dynamodb(), &|name| match name {
        "TABLE_NAME" => Some(t.table.clone()),
        "AWS_LAMBDA_FUNCTION_NAME" => Some("auth-rotate".to_owned()),
        _ => None,
    })
    .unwrap()
}

/// The `signing_key.rotated` events, as `GET /admin/v1/events` shows them
/// to a root key, newest first.
async fn rotation_events(t: &AwsTestApp) -> Vec<Value> {
    let key = t.create_key("admin:audit:read").await;
    let auth = format!("Bearer {}", t.token(&key, "audit").await);
    let r = t
        .request(
            Method::GET,
            "/admin/v1/events",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signing_key.rotated")
        .cloned()
        .collect()
}

fn secrets(t: &AwsTestApp) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&t.sdk)
}

/// Version id -> staging labels.
async fn stages(t: &AwsTestApp) -> HashMap<String, Vec<String>> {
    let out = secrets(t)
        .describe_secret()
        .secret_id(&t.secret_arn)
        .send()
        .await
        .unwrap();
    let mut stages = out.version_ids_to_stages.unwrap();
    for labels in stages.values_mut() {
        labels.sort();
    }
    stages.retain(|_, labels| !labels.is_empty());
    stages
}

async fn version_with(t: &AwsTestApp, label: &str) -> String {
    stages(t)
        .await
        .into_iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(v, _)| v)
        .unwrap_or_else(|| panic!("no version is {label}"))
}

async fn value_of(t: &AwsTestApp, version: &str) -> String {
    secrets(t)
        .get_secret_value()
        .secret_id(&t.secret_arn)
        .version_id(version)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Another Lambda environment on the same table and secret, whose key cache
/// is always cold (as after its cache time has passed).
fn cold_environment(t: &AwsTestApp) -> App {
    let source = SecretsManagerKeySource::new(secrets(t), &t.secret_arn);
    App::new(
        t.app.policy.clone(),
        t.app.store.clone(),
        Arc::new(source),
        Duration::ZERO,
        t.app.clock.clone(),
    )
}

async fn call(app: &App, route: Route, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let mut request = lambda_http::http::Request::builder()
        .method("POST")
        .uri(route.path());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap();
    let response = http::handle(app, "test", &[route], request).await;
    let status = response.status().as_u16();
    let Body::Text(text) = response.body() else {
        panic!("body is not text")
    };
    (status, serde_json::from_str(text).unwrap())
}

async fn verify_in(app: &App, token: &str) -> u16 {
    call(
        app,
        Route::Verify,
        &[("authorization", &format!("Bearer {token}"))],
        json!({}),
    )
    .await
    .0
}

async fn login_in(app: &App, api_key: &str, session: &str) -> String {
    let (status, body) = call(
        app,
        Route::Login,
        &[],
        json!({"api_key": api_key, "session_id": session}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn rotate(t: &AwsTestApp) -> String {
    rotator(t)
        .rotate(&t.secret_arn, Pace::Spaced)
        .await
        .unwrap()
        .kid
}

async fn force_rotate(t: &AwsTestApp) -> String {
    rotator(t)
        .rotate(&t.secret_arn, Pace::Forced)
        .await
        .unwrap()
        .kid
}

/// When the AWSCURRENT version was made, as Secrets Manager records it.
async fn current_created(t: &AwsTestApp) -> u64 {
    let out = secrets(t)
        .get_secret_value()
        .secret_id(&t.secret_arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    u64::try_from(out.created_date().unwrap().secs()).unwrap()
}

/// Verifies `token` in `apps` many times while `work` runs; every answer must be 200.
async fn verifying_during<F: std::future::Future>(apps: &[App], token: &str, work: F) -> F::Output {
    let verifiers = apps.iter().cycle().take(8).map(|app| {
        let (app, token) = (app.clone(), token.to_owned());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                statuses.push(verify_in(&app, &token).await);
            }
            statuses
        })
    });
    let verifiers: Vec<_> = verifiers.collect();
    let output = work.await;
    for v in verifiers {
        let statuses = v.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "a verify failed during rotation: {statuses:?}"
        );
    }
    output
}

#[tokio::test]
async fn each_step_moves_the_secret_as_documented() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let token = uuid::Uuid::new_v4().to_string();
    let r = rotator(&t);

    r.run(Step::Create, &t.secret_arn, &token).await.unwrap();
    let after_create = stages(&t).await;
    assert_eq!(after_create[&token], vec!["AWSPENDING"]);
    assert_eq!(after_create[&old], vec!["AWSCURRENT"]);
    let key: Value = serde_json::from_str(&value_of(&t, &token).await).unwrap();
    let key = key["key"].as_str().unwrap();
    assert_eq!(key.len(), 64, "256 bits as hex");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));

    r.run(Step::Set, &t.secret_arn, &token).await.unwrap();
    assert_eq!(stages(&t).await, after_create, "setSecret changes nothing");
    r.run(Step::Test, &t.secret_arn, &token).await.unwrap();
    assert_eq!(stages(&t).await, after_create, "testSecret changes nothing");

    r.run(Step::Finish, &t.secret_arn, &token).await.unwrap();
    assert_eq!(version_with(&t, "AWSCURRENT").await, token);
    assert_eq!(version_with(&t, "AWSPREVIOUS").await, old);
}

#[tokio::test]
async fn every_step_can_be_retried() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let token = uuid::Uuid::new_v4().to_string();
    let r = rotator(&t);
    r.run(Step::Create, &t.secret_arn, &token).await.unwrap();
    let pending = value_of(&t, &token).await;
    r.run(Step::Create, &t.secret_arn, &token).await.unwrap();
    assert_eq!(
        value_of(&t, &token).await,
        pending,
        "a retried createSecret keeps the pending key"
    );
    for step in [
        Step::Set,
        Step::Set,
        Step::Test,
        Step::Test,
        Step::Finish,
        Step::Finish,
    ] {
        r.run(step, &t.secret_arn, &token).await.unwrap();
    }
    assert_eq!(version_with(&t, "AWSCURRENT").await, token);
    assert_eq!(
        version_with(&t, "AWSPREVIOUS").await,
        old,
        "a retried finishSecret keeps the old key as previous"
    );
    r.run(Step::Create, &t.secret_arn, &token).await.unwrap();
    assert_eq!(
        version_with(&t, "AWSCURRENT").await,
        token,
        "steps after finishing are no-ops"
    );
}

#[tokio::test]
async fn a_rotation_is_one_signing_key_rotated_event_by_the_rotate_function_however_often_finish_runs()
 {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let token = uuid::Uuid::new_v4().to_string();
    let r = rotator(&t).with_trail(trail(&t));
    for step in Step::ALL {
        r.run(step, &t.secret_arn, &token).await.unwrap();
    }
    let key = value_of(&t, &token).await;
    for retry in [Step::Finish, Step::Finish, Step::Create] {
        r.run(retry, &t.secret_arn, &token).await.unwrap();
    }

    let events = rotation_events(&t).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        event["actor"],
        json!({"kind": "system", "id": "auth-rotate", "owner": null})
    );
    assert_eq!(event["changes"], json!({"kid": {"old": old, "new": token}}));
    assert_eq!(
        (&event["key_id"], &event["owner"]),
        (&Value::Null, &Value::Null)
    );
    let key: Value = serde_json::from_str(&key).unwrap();
    let text = event.to_string();
    assert!(
        !text.contains(key["key"].as_str().unwrap()),
        "never the key: {text}"
    );
}

#[tokio::test]
async fn a_finish_whose_event_is_not_written_fails_and_its_retry_writes_it() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let token = uuid::Uuid::new_v4().to_string();
    // A table that does not exist: DynamoDB refuses every write to it.
    let broken = Trail {
        store: Arc::new(DynamoDbStore::new(
            t.dynamodb(),
            auth_tests::unique("missing"),
        )),
        ..trail(&t)
    };
    let r = rotator(&t).with_trail(broken);
    for step in [Step::Create, Step::Set, Step::Test] {
        r.run(step, &t.secret_arn, &token).await.unwrap();
    }
    let failed = r.run(Step::Finish, &t.secret_arn, &token).await;
    assert!(
        matches!(&failed, Err(RotationError::Unrecorded { kid, .. }) if *kid == token),
        "{failed:?}"
    );
    assert_eq!(
        version_with(&t, "AWSCURRENT").await,
        token,
        "the new key is current all the same"
    );
    assert_eq!(rotation_events(&t).await, Vec::<Value>::new());

    // Secrets Manager retries the step, this time with the table reachable.
    let r = rotator(&t).with_trail(trail(&t));
    r.run(Step::Finish, &t.secret_arn, &token).await.unwrap();
    r.run(Step::Finish, &t.secret_arn, &token).await.unwrap();
    let events = rotation_events(&t).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["changes"]["kid"],
        json!({"old": old, "new": token}),
        "the retry names the key it replaced"
    );
}

#[tokio::test]
async fn a_whole_rotation_run_at_once_records_its_event_with_the_trails_actor() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let operator = Trail {
        actor: Actor::cli("ops@host"),
        ..trail(&t)
    };
    let rotated = rotator(&t)
        .with_trail(operator)
        .rotate(&t.secret_arn, Pace::Spaced)
        .await
        .unwrap();
    assert_eq!(rotated.replaced.as_deref(), Some(old.as_str()));
    let events = rotation_events(&t).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["actor"],
        json!({"kind": "cli", "id": "ops@host", "owner": null})
    );
    assert_eq!(
        events[0]["changes"]["kid"],
        json!({"old": old, "new": rotated.kid})
    );
}

#[tokio::test]
async fn a_pending_key_that_fails_its_test_leaves_the_secret_as_it_was() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let key = t.create_key("read").await;
    let before = t.token(&key, "s").await;
    let token = uuid::Uuid::new_v4().to_string();
    secrets(&t)
        .put_secret_value()
        .secret_id(&t.secret_arn)
        .client_request_token(&token)
        .secret_string(r#"{"key": "too short"}"#)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let err = rotator(&t)
        .run(Step::Test, &t.secret_arn, &token)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed its test"), "{err}");
    assert_eq!(version_with(&t, "AWSCURRENT").await, old);
    assert_eq!(verify_in(&cold_environment(&t), &before).await, 200);
}

#[tokio::test]
async fn steps_out_of_order_fail_and_change_nothing() {
    let t = AwsTestApp::spawn().await;
    let before = stages(&t).await;
    let token = uuid::Uuid::new_v4().to_string();
    for step in [Step::Set, Step::Test, Step::Finish] {
        let err = rotator(&t)
            .run(step, &t.secret_arn, &token)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("run createSecret first"), "{err}");
    }
    assert_eq!(stages(&t).await, before);
}

#[tokio::test]
async fn a_missing_secret_or_a_bad_token_fails_every_step() {
    let t = AwsTestApp::spawn().await;
    let missing = t.secret_arn.replace("signing-", "missing-");
    assert!(rotator(&t).run(Step::Create, &missing, "v2").await.is_err());
    let err = rotator(&t)
        .run(Step::Create, &t.secret_arn, "../x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a valid key id"), "{err}");
}

#[tokio::test]
async fn the_handler_takes_the_event_secrets_manager_sends() {
    let t = AwsTestApp::spawn().await;
    let token = uuid::Uuid::new_v4().to_string();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let event: RotationEvent = serde_json::from_value(json!({
            "Step": step,
            "SecretId": t.secret_arn,
            "ClientRequestToken": token,
            "RotationToken": "ignored",
        }))
        .unwrap();
        rotator(&t).handle(event).await.unwrap();
    }
    assert_eq!(version_with(&t, "AWSCURRENT").await, token);
    let unknown =
        json!({"Step": "dropSecret", "SecretId": t.secret_arn, "ClientRequestToken": token});
    assert!(serde_json::from_value::<RotationEvent>(unknown).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_one_rotation_and_end_with_a_forced_second() {
    let t = AwsTestApp::spawn().await;
    let warm = t.app.clone();
    let cold = cold_environment(&t);
    let key = t.create_key("read write").await;
    let k0 = version_with(&t, "AWSCURRENT").await;

    let one = login_in(&warm, &key, "one").await;
    assert_eq!(kid_of(&one), k0);

    // First rotation, with verifies running in both environments throughout.
    let k1 = verifying_during(&[warm.clone(), cold.clone()], &one, rotate(&t)).await;
    assert_eq!(
        verify_in(&warm, &one).await,
        200,
        "the warm cache still holds k0"
    );
    assert_eq!(
        verify_in(&cold, &one).await,
        200,
        "k0 is AWSPREVIOUS and still verifies"
    );
    assert_eq!(
        login_in(&cold, &key, "one").await,
        one,
        "a reused token keeps its kid and bytes"
    );
    let two = login_in(&cold, &key, "two").await;
    assert_eq!(kid_of(&two), k1, "new tokens are signed by the new key");
    assert_eq!(
        verify_in(&warm, &two).await,
        200,
        "an unknown kid refreshes the warm cache"
    );

    // A second rotation this soon would drop k0 while `one` lives: refused.
    let refused = rotator(&t).rotate(&t.secret_arn, Pace::Spaced).await;
    assert!(
        matches!(refused, Err(RotationError::TooSoon(_))),
        "{refused:?}"
    );
    assert_eq!(version_with(&t, "AWSCURRENT").await, k1);
    assert_eq!(verify_in(&cold, &one).await, 200);

    // Forced, as for a leaked key: k0 leaves the ring.
    let k2 = verifying_during(&[warm.clone(), cold.clone()], &two, force_rotate(&t)).await;
    assert_eq!(
        verify_in(&cold, &one).await,
        401,
        "a token whose key is gone fails"
    );
    assert_eq!(
        verify_in(&cold, &two).await,
        200,
        "k1 is AWSPREVIOUS and still verifies"
    );
    let one_again = login_in(&cold, &key, "one").await;
    assert_ne!(
        one_again, one,
        "the session's token is re-minted once its key is gone"
    );
    assert_eq!(kid_of(&one_again), k2);
    assert_eq!(verify_in(&cold, &one_again).await, 200);
    assert_eq!(
        login_in(&cold, &key, "two").await,
        two,
        "k1 is still held: same token"
    );
    let three = login_in(&cold, &key, "three").await;
    assert_eq!(kid_of(&three), k2);
    assert_eq!(verify_in(&cold, &three).await, 200);
}

#[tokio::test]
async fn create_secret_is_refused_sooner_than_the_spacing_after_the_previous_rotation() {
    let t = AwsTestApp::spawn().await;
    rotate(&t).await;
    let allowed_from = current_created(&t).await + spacing(&t).seconds();
    let before = stages(&t).await;
    let token = uuid::Uuid::new_v4().to_string();

    t.clock.set(allowed_from - 1);
    let err = rotator(&t)
        .run(Step::Create, &t.secret_arn, &token)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("may run from {}", rfc3339(allowed_from))),
        "{message}"
    );
    assert_eq!(stages(&t).await, before, "no pending version is made");

    t.clock.set(allowed_from);
    rotator(&t)
        .run(Step::Create, &t.secret_arn, &token)
        .await
        .unwrap();
    assert_eq!(stages(&t).await[&token], vec!["AWSPENDING"]);
}

#[tokio::test]
async fn the_first_rotation_of_a_new_secret_is_allowed_at_once() {
    let t = AwsTestApp::spawn().await;
    let old = version_with(&t, "AWSCURRENT").await;
    let rotated = rotator(&t)
        .rotate(&t.secret_arn, Pace::Spaced)
        .await
        .unwrap();
    assert_eq!(rotated.dropped, None, "no key was previous yet");
    assert_eq!(version_with(&t, "AWSPREVIOUS").await, old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_token_still_verifies_after_an_allowed_rotation() {
    let t = AwsTestApp::spawn().await;
    let warm = t.app.clone();
    let cold = cold_environment(&t);
    let key = t.create_key("read").await;
    let k1 = rotate(&t).await;

    // The earliest second the next rotation is allowed: the last token k1
    // signs now lives past it.
    t.clock
        .set(current_created(&t).await + spacing(&t).seconds());
    let live = login_in(&warm, &key, "live").await;
    assert_eq!(kid_of(&live), k1);
    let rotated = verifying_during(
        &[warm.clone(), cold.clone()],
        &live,
        rotator(&t).rotate(&t.secret_arn, Pace::Spaced),
    )
    .await
    .unwrap();
    assert_eq!(version_with(&t, "AWSPREVIOUS").await, k1);
    assert!(rotated.dropped.is_some(), "the key before k1 is gone");
    assert_eq!(verify_in(&warm, &live).await, 200);
    assert_eq!(verify_in(&cold, &live).await, 200, "k1 is AWSPREVIOUS");
    let fresh = login_in(&cold, &key, "fresh").await;
    assert_eq!(kid_of(&fresh), rotated.kid);
}
