//! `authctl serve`: the service's routes on one local port, through the very
//! handler the Lambdas run (`auth_shared::http::handle`), on the embedded
//! store or on DynamoDB.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_shared::App;
use auth_shared::calls::AwsCalls;
use auth_shared::clock::{Clock, SystemClock};
use auth_shared::config::TokenPolicy;
use auth_shared::http::{Route, handle};
use auth_shared::keyring::KeyRing;
use auth_shared::request::MAX_BODY_BYTES;
use auth_shared::scope::Scopes;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::cli::{BackendArgs, ServeArgs};
use crate::error::CliError;
use crate::keys;

/// How long a stop waits for requests in flight before closing their connections.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves until Ctrl-C or SIGTERM. The `listening on` line comes last, once
/// the starter key (if any) is printed: from then on requests are answered.
pub async fn run(backend: &BackendArgs, args: ServeArgs) -> Result<(), CliError> {
    tracing::subscriber::set_global_default(auth_shared::telemetry::subscriber(std::io::stderr))
        .ok();
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("no local address: {e}")))?;
    let app = app(backend, addr).await?;
    println!("authctl serve: {}", backend.describe());
    if backend.table.is_none() && app.store.list_keys().await?.is_empty() {
        starter_key(&app, addr).await?;
    }
    let stop = stop_signal()?;
    tokio::pin!(stop);
    println!("listening on http://{addr}");
    let app = Arc::new(app);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = app.clone();
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(respond(&app, request).await) }
                    });
                    let connection =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    println!("stopping");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; closing them");
    }
    println!("stopped");
    Ok(())
}

async fn app(backend: &BackendArgs, addr: SocketAddr) -> Result<App, CliError> {
    let issuer = format!("http://{addr}");
    let lookup = |name: &str| match name {
        "ISSUER" => std::env::var(name).ok().or_else(|| Some(issuer.clone())),
        _ => std::env::var(name).ok(),
    };
    let policy = TokenPolicy::from_lookup(&lookup).map_err(|e| CliError::Invalid(e.to_string()))?;
    // The local key file is cheap to re-read, so a rotation shows up within
    // seconds; Secrets Manager keeps the Lambdas' default cache.
    let cache = match (&backend.table, std::env::var("SIGNING_KEY_CACHE_SECONDS")) {
        (_, Ok(s)) => s
            .parse()
            .map_err(|_| CliError::Invalid("SIGNING_KEY_CACHE_SECONDS must be a number".into()))?,
        (None, Err(_)) => 5,
        (Some(_), Err(_)) => 300,
    };
    Ok(App {
        calls: AwsCalls::default(),
        policy,
        store: backend.store().await?,
        keys: Arc::new(KeyRing::new(
            backend.key_source().await?,
            Duration::from_secs(cache),
        )),
        clock: Arc::new(SystemClock),
    })
}

async fn starter_key(app: &App, addr: SocketAddr) -> Result<(), CliError> {
    let scopes = Scopes::parse("read write").map_err(|e| CliError::Failed(e.to_string()))?;
    let (key, _) = keys::create(
        app.store.as_ref(),
        "starter",
        scopes,
        SystemClock
            .now()
            .map_err(|e| CliError::Failed(e.to_string()))?,
        None,
    )
    .await?;
    let key = key.expose();
    let key = key.expose_secret();
    let base = format!("http://{addr}");
    println!(
        "
A starter API key (scopes \"read write\") was created; it is shown only now:

  {key}

Try it:

  curl -s {base}/auth/login -H 'content-type: application/json' -d '{{\"api_key\": \"{key}\"}}'
  TOKEN=$(curl -s {base}/auth/login -H 'content-type: application/json' -d '{{\"api_key\": \"{key}\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')
  curl -s {base}/auth/verify -H \"authorization: Bearer $TOKEN\"
  curl -s -X POST {base}/auth/revoke -H \"authorization: Bearer $TOKEN\"
  curl -s {base}/auth/verify -H \"authorization: Bearer $TOKEN\"

More keys: authctl keys create --name NAME --scopes \"read\"   (Ctrl-C stops the server)
"
    );
    Ok(())
}

/// One request through the Lambdas' handler: hyper in, lambda_http in the middle, hyper out.
async fn respond(app: &App, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match read_capped(body).await {
        Ok(bytes) if bytes.is_empty() => lambda_http::Body::Empty,
        Ok(bytes) => lambda_http::Body::Binary(bytes),
        Err(e) => {
            tracing::debug!(error = %e, "request body could not be read");
            return plain(
                400,
                r#"{"error":"invalid_request","error_description":"the body could not be read"}"#,
            );
        }
    };
    let response = handle(
        app,
        "authctl",
        Route::ALL,
        lambda_http::Request::from_parts(parts, body),
    )
    .await;
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}

/// Reads at most one byte past the handler's cap: enough for it to answer
/// 413, without holding an unbounded body in memory.
async fn read_capped(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > MAX_BODY_BYTES {
                bytes.truncate(MAX_BODY_BYTES + 1);
                break;
            }
        }
    }
    Ok(bytes)
}

fn plain(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when first polled, so a signal that comes right after
/// the `listening on` line still stops the server cleanly.
#[cfg(unix)]
fn stop_signal() -> Result<impl Future<Output = ()>, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install =
        |kind| signal(kind).map_err(|e| CliError::Failed(format!("cannot handle signals: {e}")));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> Result<impl Future<Output = ()>, CliError> {
    Ok(async {
        tokio::signal::ctrl_c().await.ok();
    })
}
