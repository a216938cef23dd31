//! One connection's deadlines, and the socket wrapper that keeps them.
//!
//! hyper's own `header_read_timeout` starts when a connection goes idle, so
//! it cannot tell a keep-alive connection waiting for its next request (fine
//! for `idle`) from a request whose headers trickle in (cut after `request`).
//! This clock can: a connection is `Head` from its first byte (or from
//! accept) until hyper hands the request to the service, `Busy` while the
//! service answers (the body read has its own deadline, see
//! [`ConnectionClock::request_started`]), and `Idle` from the answer to the
//! next byte.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a connection may take for each part of its life.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a request's first byte (or from accept) to its last, body included.
    pub request: Duration,
    /// Between the end of an answer and the first byte of the next request.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    /// The service answered and hyper has not flushed that answer yet.
    answer_unflushed: bool,
}

/// Where one connection is in its request cycle, and since when.
#[derive(Debug)]
pub struct ConnectionClock {
    limits: Limits,
    state: Mutex<State>,
}

impl ConnectionClock {
    /// A connection just accepted: its first request's headers are due within `limits.request`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                answer_unflushed: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is three plain fields, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_arrived(&self, now: Instant) {
        let mut state = self.state();
        if state.phase == Phase::Idle {
            state.phase = Phase::Head;
            state.since = now;
        }
    }

    /// hyper parsed a request head: the service runs. Returns the deadline
    /// for the rest of the request, its body.
    pub fn request_started(&self) -> Instant {
        let mut state = self.state();
        state.phase = Phase::Busy;
        state.since + self.limits.request
    }

    /// The service answered: the connection idles from now.
    pub fn request_answered(&self) {
        let mut state = self.state();
        state.phase = Phase::Idle;
        state.since = Instant::now();
        state.answer_unflushed = true;
    }

    fn flushed(&self) {
        self.state().answer_unflushed = false;
    }

    /// Whether what hyper writes now is its own answer to a request it could
    /// not parse (the service has not seen that request).
    fn hyper_answers_itself(&self) -> bool {
        let state = self.state();
        state.phase != Phase::Busy && !state.answer_unflushed
    }

    /// When the connection must be closed; none while the service runs.
    fn deadline(&self) -> Option<Instant> {
        let state = self.state();
        match state.phase {
            Phase::Head => Some(state.since + self.limits.request),
            Phase::Idle => Some(state.since + self.limits.idle),
            Phase::Busy => None,
        }
    }

    /// Resolves once the connection has overstayed its current phase.
    pub async fn overstayed(&self) {
        loop {
            let wake = match self.deadline() {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => deadline,
                // The service bounds itself; look again later.
                None => Instant::now() + self.limits.request,
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// The TCP stream as hyper sees it: reads move the clock, and hyper's own
/// bodiless answers to unparsable requests (400, 414, 431) are swapped for
/// the JSON error every other answer has.
#[derive(Debug)]
pub struct Watched {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
    replacement: Option<Replacement>,
}

#[derive(Debug)]
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
}

impl Watched {
    /// Wraps `stream`; `clock` is shared with the connection's service.
    pub fn new(stream: TcpStream, clock: Arc<ConnectionClock>) -> Self {
        Self {
            stream,
            clock,
            replacement: None,
        }
    }

    /// Whether to swallow this write of hyper's, queueing the JSON answer in its place.
    fn swaps(&mut self, first: &[u8]) -> bool {
        if self.replacement.is_none() && self.clock.hyper_answers_itself() {
            self.replacement = Some(Replacement {
                bytes: replacement_for(first),
                written: 0,
            });
        }
        self.replacement.is_some()
    }

    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(replacement) = &mut self.replacement {
            while let Some(rest) = replacement.bytes.get(replacement.written..)
                && !rest.is_empty()
            {
                let n = ready!(Pin::new(&mut self.stream).poll_write(cx, rest))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                replacement.written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The JSON answer for hyper's automatic one, whose status line starts `first`.
fn replacement_for(first: &[u8]) -> Vec<u8> {
    let status = first
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(StatusCode::is_client_error)
        .unwrap_or(StatusCode::BAD_REQUEST);
    let description = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request headers are too large",
        StatusCode::URI_TOO_LONG => "the request target is too long",
        _ => "the request is not valid HTTP/1.1",
    };
    let body = super::error_body(status, "invalid_request", description);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.bytes_arrived(Instant::now());
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.swaps(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.swaps(first) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        // hyper flushes once its buffer is empty: the whole answer is out.
        this.clock.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_new_connection_owes_its_headers_within_the_request_timeout() {
        let clock = ConnectionClock::new(limits());
        let since = clock.state().since;
        assert_eq!(clock.deadline(), Some(since + limits().request));
        assert_eq!(
            clock.request_started(),
            since + limits().request,
            "the body shares it"
        );
        assert_eq!(clock.deadline(), None, "the service bounds itself");
    }

    #[test]
    fn an_answered_connection_idles_until_the_next_byte_starts_a_request() {
        let clock = ConnectionClock::new(limits());
        clock.request_started();
        clock.request_answered();
        let answered = clock.state().since;
        assert_eq!(clock.deadline(), Some(answered + limits().idle));
        let byte = answered + Duration::from_secs(30);
        clock.bytes_arrived(byte);
        assert_eq!(clock.deadline(), Some(byte + limits().request));
        clock.bytes_arrived(byte + Duration::from_secs(5));
        assert_eq!(
            clock.deadline(),
            Some(byte + limits().request),
            "later bytes move nothing"
        );
    }

    #[test]
    fn only_writes_outside_a_served_request_are_hypers_own_answers() {
        let clock = ConnectionClock::new(limits());
        assert!(clock.hyper_answers_itself(), "nothing served yet");
        clock.request_started();
        assert!(!clock.hyper_answers_itself(), "100-continue, or the answer");
        clock.request_answered();
        clock.bytes_arrived(Instant::now());
        assert!(
            !clock.hyper_answers_itself(),
            "the answer is still being written"
        );
        clock.flushed();
        assert!(
            clock.hyper_answers_itself(),
            "a pipelined request hyper could not parse"
        );
    }

    #[test]
    fn hypers_bodiless_answers_become_json_with_their_status() {
        for (written, status) in [
            (
                &b"HTTP/1.1 431 Request Header Fields Too Large\r\n"[..],
                "431",
            ),
            (b"HTTP/1.1 414 URI Too Long\r\n", "414"),
            (b"HTTP/1.1 400 Bad Request\r\n", "400"),
            (b"HTTP/1.1 500 x", "400"),
            (b"HTTP", "400"),
        ] {
            let answer = String::from_utf8(replacement_for(written)).unwrap();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{answer}"
            );
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"], "invalid_request", "{answer}");
        }
    }
}
