//! `authctl serve`: the service's routes on one local port, through the very
//! handler the Lambdas run (`auth_shared::http::handle`), on the embedded
//! store or on DynamoDB.
//!
//! It faces whatever can reach the port, so each connection is bounded: a
//! request must arrive whole within `--request-timeout`, an idle connection
//! closes after `--idle-timeout`, at most `--max-connections` are served at
//! once, and only requests whose `Host` names this server are answered.

mod accept;
mod connection;
pub mod host;
mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_shared::App;
use auth_shared::config::{self, TokenPolicy};
use auth_shared::domain::admin::{self, NewKey};
use auth_shared::domain::clock::SystemClock;
use auth_shared::domain::scope::Scopes;
use auth_shared::http::body::MAX_BODY_BYTES;
use auth_shared::http::error::RETRY_AFTER_SECONDS;
use auth_shared::http::{Route, handle};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cli::{BackendArgs, ServeArgs};
use crate::error::CliError;
use crate::keys;
use connection::{ConnectionClock, Limits, Watched};
use host::{Hosts, Refusal};

/// How long a stop waits for requests in flight before closing their connections.
const DRAIN: Duration = Duration::from_secs(5);

/// Connections past `--max-connections` that are still answered 503 at once;
/// beyond these a new connection is closed unanswered.
///
/// A 503 with `Retry-After` tells a client to back off, where a bare close
/// looks like a network fault that clients retry at once; but answering costs
/// a task and reading the request (closing a socket with unread input resets
/// it, and the client may never see the answer). So a small pool answers, and
/// a flood beyond it costs no more than accept and close.
const SHED_AT_ONCE: usize = 64;

/// What every connection's service shares.
struct Site {
    app: App,
    hosts: Hosts,
    /// What `GET /metrics` serves; `None` with `--no-metrics`.
    metrics: Option<Arc<metrics::Metrics>>,
}

/// Serves until Ctrl-C or SIGTERM. The `listening on` line comes last, once
/// the starter and console keys (if any) and the console's address are
/// printed: from then on requests are answered.
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
    if backend.table.is_none() && app.store.keys_page(None, None, 1).await?.is_empty() {
        starter_key(&app, addr).await?;
        console_key(&app, addr).await?;
    }
    let stop = stop_signal()?;
    tokio::pin!(stop);
    println!("Console: http://{addr}/console/");
    let metrics = (!args.no_metrics).then(|| {
        let metrics = metrics::Metrics::new();
        auth_shared::telemetry::metrics::install(Box::new(metrics::Feed(metrics.clone())));
        println!("Metrics: http://{addr}{}", metrics::PATH);
        metrics
    });
    println!("listening on http://{addr}");
    let site = Arc::new(Site {
        app,
        hosts: Hosts::new(addr, &args.public_host),
        metrics,
    });
    let limits = Limits {
        request: args.request_timeout,
        idle: args.idle_timeout,
    };
    let open = Arc::new(Semaphore::new(args.max_connections as usize));
    let shedding = Arc::new(Semaphore::new(SHED_AT_ONCE));
    let mut backoff = accept::Backoff::default();
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    if let Ok(permit) = open.clone().try_acquire_owned() {
                        tokio::spawn(serve(stream, site.clone(), limits, graceful.watcher(), permit));
                    } else if let Ok(permit) = shedding.clone().try_acquire_owned() {
                        tokio::spawn(shed(stream, limits, graceful.watcher(), permit));
                    }
                }
                Err(e) => {
                    let after = backoff.failed(std::time::Instant::now());
                    if let Some(failures) = after.log {
                        tracing::warn!(error = %e, failures, pause_ms = after.pause.as_millis(),
                            "accept failed; pausing before the next");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(after.pause) => {}
                        () = &mut stop => break,
                    }
                }
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
    let default_cache = if backend.table.is_some() { 300 } else { 5 };
    let cache = config::signing_key_cache(&lookup, default_cache)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let admin =
        config::AdminPolicy::from_lookup(&lookup).map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(App::new(
        policy,
        backend.store().await?,
        backend.key_source().await?,
        cache,
        Arc::new(SystemClock),
    )
    .with_admin(admin))
}

/// The scopes of the console key: every admin scope, so it can
/// sign in to the console in operator mode and hand out portal links.
const CONSOLE_SCOPES: &str = "admin:keys:read admin:keys:write admin:audit:read admin:portal";

/// A new key of the operator's named `name` with `scopes`, to print once.
async fn new_key(app: &App, name: &str, scopes: &str) -> Result<SecretString, CliError> {
    let scopes = Scopes::parse(scopes).map_err(|e| CliError::Failed(e.to_string()))?;
    let new = NewKey {
        name: name.into(),
        scopes,
        owner: None,
        meta: None,
        expires_at: None,
    };
    let (key, _) = admin::create(app.store.as_ref(), new, &keys::operator()?).await?;
    Ok(key.expose())
}

async fn starter_key(app: &App, addr: SocketAddr) -> Result<(), CliError> {
    let key = new_key(app, "starter", "read write").await?;
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

/// The root key an operator signs in to the console with, printed after the
/// starter key (scripts that read the banner take its first key).
async fn console_key(app: &App, addr: SocketAddr) -> Result<(), CliError> {
    let key = new_key(app, "console", CONSOLE_SCOPES).await?;
    let key = key.expose_secret();
    let base = format!("http://{addr}");
    println!(
        "A console key (scopes \"{CONSOLE_SCOPES}\") was created to sign in to the console \
         with; it is shown only now:

  {key}

A one-time customer portal link for the customer \"acme\" (open the url it prints within 5 minutes):

  curl -s {base}/admin/v1/portal-sessions -H 'content-type: application/json' -H \"authorization: Bearer $(curl -s {base}/auth/login -H 'content-type: application/json' -d '{{\"api_key\": \"{key}\", \"session_id\": \"portal-links\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\" -d '{{\"owner\": \"acme\", \"allowed_scopes\": \"read write\"}}'
"
    );
    Ok(())
}

/// Serves one connection within `limits`; it holds `permit` until it closes.
async fn serve(
    stream: TcpStream,
    site: Arc<Site>,
    limits: Limits,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) {
    connection(stream, limits, true, watcher, move |request, deadline| {
        let site = site.clone();
        async move { respond(&site, request, deadline).await }
    })
    .await;
    drop(permit);
}

/// Answers every request of a connection past the cap 503, then closes it.
async fn shed(stream: TcpStream, limits: Limits, watcher: Watcher, permit: OwnedSemaphorePermit) {
    connection(
        stream,
        limits,
        false,
        watcher,
        |request, deadline| async move {
            // Read first: closing on unread input would reset the connection
            // under the answer.
            read_body(request.into_body(), deadline).await.ok();
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server has too many open connections; retry later",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            response
        },
    )
    .await;
    drop(permit);
}

/// Runs hyper on `stream` with `answer` as the service, and closes the
/// connection when it overstays a phase of `limits`.
async fn connection<F, Fut>(
    stream: TcpStream,
    limits: Limits,
    keep_alive: bool,
    watcher: Watcher,
    answer: F,
) where
    F: Fn(Request<Incoming>, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let clock = Arc::new(ConnectionClock::new(limits));
    let io = TokioIo::new(Watched::new(stream, clock.clone()));
    let service = {
        let clock = clock.clone();
        service_fn(move |request| {
            let answered = answer(request, clock.request_started());
            let clock = clock.clone();
            async move {
                let response = answered.await;
                clock.request_answered();
                Ok::<_, Infallible>(response)
            }
        })
    };
    // The clock keeps the header deadline: hyper's own would cut idle
    // keep-alive connections after it too (and needs a timer).
    let connection = http1::Builder::new()
        .keep_alive(keep_alive)
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::select! {
        result = watcher.watch(connection) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = clock.overstayed() => tracing::debug!("connection closed: it timed out"),
    }
}

/// One request through the Lambdas' handler: hyper in, lambda_http in the middle, hyper out.
async fn respond(
    site: &Site,
    request: Request<Incoming>,
    deadline: Instant,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match read_body(body, deadline).await {
        Ok(bytes) if bytes.is_empty() => lambda_http::Body::Empty,
        Ok(bytes) => lambda_http::Body::Binary(bytes),
        Err(BodyError::Late) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body did not arrive in time",
            );
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(BodyError::Broken(e)) => {
            tracing::debug!(error = %e, "request body could not be read");
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body could not be read",
            );
        }
    };
    match site.hosts.check(&parts.uri, &parts.headers) {
        Ok(()) => {}
        Err(Refusal::Malformed) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request needs exactly one Host header of the form name[:port]",
            );
        }
        Err(Refusal::Foreign) => {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "invalid_request",
                "this server does not answer for that Host (see authctl serve --public-host)",
            );
        }
    }
    if let Some(metrics) = &site.metrics
        && parts.uri.path() == metrics::PATH
    {
        return scrape(metrics, &parts.method);
    }
    let response = handle(
        &site.app,
        "authctl",
        Route::ALL,
        lambda_http::Request::from_parts(parts, body),
    )
    .await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}

enum BodyError {
    Late,
    Broken(hyper::Error),
}

/// Reads the body by `deadline`, at most one byte past the handler's cap:
/// enough for it to answer 413, without holding an unbounded body in memory.
async fn read_body(body: Incoming, deadline: Instant) -> Result<Vec<u8>, BodyError> {
    tokio::time::timeout_at(deadline, read_capped(body))
        .await
        .map_err(|_| BodyError::Late)?
        .map_err(BodyError::Broken)
}

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

/// The JSON of an error the server answers before the handler sees the
/// request: the handler's shape with a fresh request id, and its log line.
fn error_body(status: StatusCode, code: &str, description: &str) -> String {
    let request_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(
        function = "authctl",
        status = status.as_u16(),
        outcome = "error",
        error = code,
        request_id,
        "request"
    );
    serde_json::json!({
        "error": code,
        "error_description": description,
        "request_id": request_id,
    })
    .to_string()
}

/// `GET /metrics` (or HEAD): the metrics now; other methods 405.
fn scrape(metrics: &metrics::Metrics, method: &hyper::Method) -> Response<Full<Bytes>> {
    if method != hyper::Method::GET && method != hyper::Method::HEAD {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "GET /metrics only",
        );
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Ok(text) = metrics.encode() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the metrics could not be encoded",
        );
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error answered by the server itself.
fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    let body = error_body(status, code, description);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
