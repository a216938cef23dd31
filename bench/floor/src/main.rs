//! The floor of `scripts/bench`: hyper on tokio, as `authctl serve` runs
//! them (the multi-threaded runtime, HTTP/1.1 with keep-alive, one task per
//! connection), answering every request with a fixed 200 JSON body and
//! nothing else: no routing, no store, no log line. What `authctl serve`
//! achieves is read as a fraction of this. A bench tool, not shipped.
//!
//! Usage: bench-floor [ADDR]   (default 127.0.0.1:0)
//! Prints "listening on http://ADDR" once it accepts connections.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// About the size of a verify answer, so the bytes on the wire compare too.
const BODY: &str = r#"{"active":true,"sub":"key_0000000000000000","sid":"default","scope":"read write","exp":1900000000}"#;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bench-floor: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("listening on http://{local}"),
        Err(e) => {
            eprintln!("bench-floor: no local address: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(answer);
            // Errors are clients going away mid-request; nothing to report.
            http1::Builder::new()
                .keep_alive(true)
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service)
                .await
                .ok();
        });
    }
}

/// Reads the request body, as the real server does, then answers the fixed body.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    request.into_body().collect().await.ok();
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
