//! HTTP/1.1 by hand over one TCP connection: for what a well-behaved client
//! library never sends (half a request, bytes that are not UTF-8, a stalled
//! body) and for watching when the server closes.

// Shared by the CLI test targets, each of which uses a part of it.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one read may wait on a busy machine before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One answer, read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The head, header names in lower case.
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed it (FIN, or a reset).
    Closed,
    /// Still open after the patience ran out.
    StillOpen,
}

/// A TCP connection to the server.
pub struct Raw {
    stream: TcpStream,
    /// When the connection was opened (before connect).
    pub opened: Instant,
    pending: Vec<u8>,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`.
    pub fn open(port: u16) -> Self {
        Self::try_open(port).unwrap()
    }

    /// Connects to 127.0.0.1:`port`, if anything listens there.
    pub fn try_open(port: u16) -> std::io::Result<Self> {
        let opened = Instant::now();
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(Self {
            stream,
            opened,
            pending: Vec::new(),
        })
    }

    /// Sends bytes; a server that already closed is not an error here (the
    /// next read tells).
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        if let Err(e) = self.stream.write_all(bytes) {
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e}"
            );
        }
        self
    }

    fn fill(&mut self) -> Option<usize> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => None,
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no answer within {PATIENCE:?}")
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// The next answer, or `None` if the server closed before a whole one came.
    pub fn answer(&mut self) -> Option<Answer> {
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.pending[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let total = end + 4 + length;
                while self.pending.len() < total {
                    self.fill()?;
                }
                let rest = self.pending.split_off(total);
                let whole = std::mem::replace(&mut self.pending, rest);
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status in {head}"));
                return Some(Answer {
                    status,
                    head,
                    body: whole[end + 4..].to_vec(),
                });
            }
            self.fill()?;
        }
    }

    /// Sends one request and reads its answer.
    pub fn exchange(&mut self, request: &[u8]) -> Option<Answer> {
        self.send(request).answer()
    }

    /// Waits for the server to close, reading and keeping whatever comes
    /// first; how it ended and when, since the connection was opened.
    pub fn end(&mut self) -> (End, Duration, Vec<u8>) {
        loop {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (
                        End::StillOpen,
                        self.opened.elapsed(),
                        std::mem::take(&mut self.pending),
                    );
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
        (
            End::Closed,
            self.opened.elapsed(),
            std::mem::take(&mut self.pending),
        )
    }
}

/// A GET of `path` with `Host: host`.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// A POST of `body` with `Host: host`, `content_type` and any `extra` header lines.
pub fn post(path: &str, host: &str, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}
