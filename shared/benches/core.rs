//! Micro-benchmarks of the common crate: API keys, tokens, and the login and
//! verify logic end to end on the embedded store, one operation per iteration.
//!
//! `cargo bench -p auth-shared` runs them all (about a minute on 2 cores);
//! `cargo bench -p auth-shared -- token/` runs a subset. After criterion's own
//! report, a table compares the medians of this run with the targets of
//! BENCHMARKS.md. Targets live here, in the output, and never in a timed test.

// Set-up failures abort a benchmark run the way they abort a start-up: there
// is no caller to hand an error to.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::string_slice)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use auth_shared::App;
use auth_shared::config::TokenPolicy;
use auth_shared::domain::admin::{self, NewKey};
use auth_shared::domain::api_key::{ApiKey, KeyRecord};
use auth_shared::domain::audit::{Actor, Origin};
use auth_shared::domain::clock::{Clock, SystemClock};
use auth_shared::domain::keyring::{KeySet, SigningKey, StaticKeySource};
use auth_shared::domain::login::{self, LoginRequest};
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::token::{self, Claims};
use auth_shared::domain::verify;
use auth_shared::local::sqlite::SqliteStore;
use auth_shared::telemetry::Audit;
use criterion::{Criterion, criterion_group};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const ISSUER: &str = "https://auth.example.com";
/// Shaped like a Secrets Manager version id, the production kid.
const KID: &str = "7c5d2f3a-1b9e-4c8d-a6f0-3e2b1d4c5a69";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
const SCOPE: &str = "read write";

fn signing_key() -> SigningKey {
    SigningKey::new(KID, &SecretString::from(SECRET)).expect("a valid signing key")
}

/// Claims shaped like those login mints: a 16-hex key id, the default
/// session, a 32-hex jti.
fn claims(now: u64) -> Claims {
    Claims {
        iss: ISSUER.into(),
        aud: None,
        sub: "0123456789abcdef".into(),
        sid: "default".into(),
        jti: "6f1c0e8a9b2d4e7f8a1b2c3d4e5f6a7b".into(),
        iat: now,
        nbf: None,
        exp: now + 7200,
        scope: SCOPE.into(),
    }
}

fn api_keys(c: &mut Criterion) {
    let key = ApiKey::generate().expect("OS randomness");
    let text = key.expose();
    let text = text.expose_secret();
    let now = SystemClock.now().expect("a sane clock");
    let record = KeyRecord::new(&key, "bench", scopes(), now, None);

    c.bench_function("api_key/parse", |b| {
        b.iter(|| ApiKey::parse(black_box(text)).expect("a valid key"))
    });
    c.bench_function("api_key/authenticates", |b| {
        b.iter(|| black_box(&record).authenticates(black_box(&key), now))
    });
    c.bench_function("api_key/parse_and_authenticate", |b| {
        b.iter(|| {
            let parsed = ApiKey::parse(black_box(text)).expect("a valid key");
            record.authenticates(&parsed, now)
        })
    });
}

fn tokens(c: &mut Criterion) {
    let key = signing_key();
    let set = KeySet {
        current: Arc::new(signing_key()),
        previous: None,
    };
    let policy = TokenPolicy::with_issuer(ISSUER);
    let now = SystemClock.now().expect("a sane clock");
    let claims = claims(now);
    let jwt = token::sign(&claims, &key).expect("signs");

    c.bench_function("token/sign", |b| {
        b.iter(|| token::sign(black_box(&claims), &key).expect("signs"))
    });
    c.bench_function("token/verify", |b| {
        b.iter(|| {
            let unverified = token::inspect(black_box(&jwt)).expect("well formed");
            let key = set.find(unverified.kid()).expect("known kid");
            let claims = token::verify_signature(&unverified, key).expect("authentic");
            token::check_claims(&claims, &policy, now).expect("valid");
            claims
        })
    });

    // Where token/verify spends its time, stage by stage.
    c.bench_function("token/verify/inspect", |b| {
        b.iter(|| token::inspect(black_box(&jwt)).expect("well formed"))
    });
    let unverified = token::inspect(&jwt).expect("well formed");
    c.bench_function("token/verify/signature_and_claims_decode", |b| {
        b.iter(|| token::verify_signature(black_box(&unverified), &key).expect("authentic"))
    });

    // The floor under verify: one HMAC-SHA256 over the bytes the signature covers.
    let (signing_input, _) = jwt.rsplit_once('.').expect("three parts");
    let mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    c.bench_function("hmac_sha256/signing_input", |b| {
        b.iter(|| {
            let mut mac = mac.clone();
            mac.update(black_box(signing_input.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
}

fn scopes() -> Scopes {
    Scopes::parse(SCOPE).expect("valid scopes")
}

/// An [`App`] on a fresh embedded store in a temporary directory, holding
/// one API key; the directory lives as long as the returned guard.
fn embedded_app(rt: &tokio::runtime::Runtime) -> (App, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("auth.db")).expect("opens");
    let source = StaticKeySource(KeySet {
        current: Arc::new(signing_key()),
        previous: None,
    });
    let app = App::new(
        TokenPolicy::with_issuer(ISSUER),
        Arc::new(store),
        Arc::new(source),
        Duration::from_secs(300),
        Arc::new(SystemClock),
    );
    let new = NewKey {
        name: "bench".into(),
        scopes: scopes(),
        owner: None,
        meta: None,
        expires_at: None,
    };
    let stamp = app
        .stamp(Origin::of(Actor::cli("bench@host")))
        .expect("a sane clock");
    let key = rt.block_on(async {
        let (key, _) = admin::create(app.store.as_ref(), new, &stamp)
            .await
            .expect("writes");
        app.keys.keys().await.expect("warm key ring");
        key
    });
    (app, key.expose().expose_secret().to_owned(), dir)
}

fn login_request(api_key: &str, session_id: Option<String>) -> LoginRequest {
    LoginRequest {
        api_key: SecretString::from(api_key),
        session_id,
        scope: None,
    }
}

fn logic(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, api_key, _dir) = embedded_app(&rt);
    let jwt = rt.block_on(async {
        let issued = login::login(&app, login_request(&api_key, None), &mut Audit::default())
            .await
            .expect("logs in");
        issued.access_token.expose_secret().to_owned()
    });

    // The parts of verify that are not token checks.
    let key_id = auth_shared::domain::api_key::KeyId::parse(&api_key[6..22]).expect("a key id");
    let session = auth_shared::domain::session_id::SessionId::default_session();
    c.bench_function("store/key_and_session_embedded", |b| {
        b.to_async(&rt).iter(|| async {
            app.store
                .key_and_session(black_box(&key_id), &session)
                .await
                .expect("reads")
        })
    });
    c.bench_function("keyring/find", |b| {
        b.to_async(&rt)
            .iter(|| async { app.keys.find(black_box(KID)).await.expect("cached") })
    });

    c.bench_function("logic/verify_embedded", |b| {
        b.to_async(&rt).iter(|| async {
            verify::verify(&app, Some(black_box(&jwt)), None, &mut Audit::default())
                .await
                .expect("active")
        })
    });
    c.bench_function("logic/login_reuse_embedded", |b| {
        b.to_async(&rt).iter(|| async {
            let issued = login::login(&app, login_request(&api_key, None), &mut Audit::default())
                .await
                .expect("logs in");
            debug_assert_eq!(issued.access_token.expose_secret(), jwt);
            issued
        })
    });
    // Every iteration opens a new session: one read, one signature, one
    // conditional insert.
    let sessions = AtomicU64::new(0);
    c.bench_function("logic/login_mint_embedded", |b| {
        b.to_async(&rt).iter(|| async {
            let n = sessions.fetch_add(1, Ordering::Relaxed);
            let request = login_request(&api_key, Some(format!("s{n}")));
            login::login(&app, request, &mut Audit::default())
                .await
                .expect("logs in")
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = api_keys, tokens, logic
}

/// A target: the benchmark it reads, and the most it may take, in nanoseconds,
/// either absolute or as a multiple of another benchmark.
enum Limit {
    Nanos(f64),
    TimesOf(&'static str, f64),
}

const TARGETS: &[(&str, &str, Limit)] = &[
    (
        "verify logic, embedded store",
        "logic/verify_embedded",
        Limit::Nanos(10_000.0),
    ),
    (
        "login reusing a token, embedded store",
        "logic/login_reuse_embedded",
        Limit::Nanos(15_000.0),
    ),
    (
        "token verify, every check",
        "token/verify",
        Limit::TimesOf("hmac_sha256/signing_input", 10.0),
    ),
];

/// Where criterion writes its estimates: as criterion finds it (CRITERION_HOME,
/// CARGO_TARGET_DIR), or beside this executable (target/release/deps/..).
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The median of `id` in nanoseconds, if it was measured by this run.
fn median(home: &std::path::Path, id: &str, since: SystemTime) -> Option<f64> {
    // Criterion names a benchmark's folder after its id, with '/' as '_'.
    let path = home
        .join(id.replace('/', "_"))
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn report_targets(since: SystemTime) {
    let Some(home) = criterion_home() else {
        return;
    };
    println!("\ntargets (medians of this run)");
    for (what, id, limit) in TARGETS {
        let Some(measured) = median(&home, id, since) else {
            continue;
        };
        let (bound, unit_note) = match limit {
            Limit::Nanos(ns) => (Some(*ns), format!("<= {:.1} us", ns / 1000.0)),
            Limit::TimesOf(base, times) => match median(&home, base, since) {
                Some(b) => (
                    Some(b * times),
                    format!("<= {times}x {base} ({b:.0} ns) = {:.0} ns", b * times),
                ),
                None => (None, format!("<= {times}x {base} (not measured)")),
            },
        };
        let verdict = match bound {
            Some(bound) if measured <= bound => "met",
            Some(_) => "MISSED",
            None => "n/a",
        };
        println!("  {what:<40} {measured:>9.0} ns   target {unit_note:<48} {verdict}");
    }
}

fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    report_targets(started);
}
