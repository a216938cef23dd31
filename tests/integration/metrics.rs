//! The metrics on each request line, on the embedded store: valid EMF with
//! only the listed dimensions, counting what each request did.
//!
//! `#[tokio::test]` runs on one thread, so the thread-local subscriber of
//! `CapturedLogs` sees everything the handlers log.

use auth_shared::telemetry::metrics::Metric;
use auth_tests::{CapturedLogs, TestApp};
use lambda_http::http::Method;
use serde_json::{Value, json};

use crate::emf::{self, value};

/// What one line should count, besides `Requests` 1 and a latency.
struct Counts {
    route: &'static str,
    client_errors: f64,
    minted: f64,
    reused: f64,
    revocations: f64,
}

fn counts(
    route: &'static str,
    client_errors: f64,
    minted: f64,
    reused: f64,
    revocations: f64,
) -> Counts {
    Counts {
        route,
        client_errors,
        minted,
        reused,
        revocations,
    }
}

#[tokio::test]
async fn each_request_line_is_emf_counting_what_the_request_did() {
    emf::publish();
    let t = TestApp::spawn().await;
    let key = t.create_key("read write").await;
    let logs = CapturedLogs::default();
    let _guard = logs.install();

    let first = t.token(&key, "s1").await;
    assert_eq!(
        t.token(&key, "s1").await,
        first,
        "the second login reuses the token"
    );
    assert_eq!(t.verify(&first, Some("read")).await.status, 200);
    assert_eq!(t.verify("not-a-token", None).await.status, 401);
    assert_eq!(t.revoke_bearer(&first).await.status, 200);
    assert_eq!(
        t.revoke_bearer(&first).await.status,
        200,
        "a second revoke is a no-op"
    );
    let r = t.request(Method::GET, "/nowhere", &[], "").await;
    assert_eq!(r.status, 404);
    let r = t.login(json!({"api_key": key, "session_id": "s2"})).await;
    assert_eq!(r.status, 200);
    let expected = [
        counts("/auth/login", 0.0, 1.0, 0.0, 0.0),
        counts("/auth/login", 0.0, 0.0, 1.0, 0.0),
        counts("/auth/verify", 0.0, 0.0, 0.0, 0.0),
        counts("/auth/verify", 1.0, 0.0, 0.0, 0.0),
        counts("/auth/revoke", 0.0, 0.0, 0.0, 1.0),
        counts("/auth/revoke", 0.0, 0.0, 0.0, 0.0),
        counts("unknown", 1.0, 0.0, 0.0, 0.0),
        counts("/auth/login", 0.0, 1.0, 0.0, 0.0),
    ];

    let lines = emf::request_lines(&logs.text());
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(&expected) {
        assert_eq!(line["Function"], "test", "{line}");
        assert_eq!(line["Route"], want.route, "{line}");
        assert_eq!(value(line, Metric::Requests), 1.0, "{line}");
        assert_eq!(
            value(line, Metric::ClientErrors),
            want.client_errors,
            "{line}"
        );
        assert_eq!(value(line, Metric::ServerErrors), 0.0, "{line}");
        assert_eq!(value(line, Metric::BackendUnavailable), 0.0, "{line}");
        assert_eq!(value(line, Metric::TokensMinted), want.minted, "{line}");
        assert_eq!(value(line, Metric::TokensReused), want.reused, "{line}");
        assert_eq!(value(line, Metric::Revocations), want.revocations, "{line}");
        assert_eq!(value(line, Metric::AuthorizerDenied), 0.0, "{line}");
        // The embedded store makes no DynamoDB call.
        assert_eq!(value(line, Metric::DynamoDbCalls), 0.0, "{line}");
        let latency = value(line, Metric::Latency);
        assert!(
            (latency - line["latency_ms"].as_f64().unwrap()).abs() < 1e-9,
            "Latency is the line's latency_ms: {line}"
        );
    }
}

#[tokio::test]
async fn the_route_dimension_is_a_template_never_a_raw_path() {
    emf::publish();
    let t = TestApp::spawn().await;
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    for id in ["0123456789abcdef", "fedcba9876543210"] {
        let r = t
            .request(Method::GET, &format!("/admin/v1/keys/{id}"), &[], "")
            .await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    let lines = emf::request_lines(&logs.text());
    let routes: Vec<&Value> = lines.iter().map(|l| &l["Route"]).collect();
    assert_eq!(routes, [&json!("/admin/v1/keys/{key_id}"); 2]);
}
