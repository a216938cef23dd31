//! The real `authctl serve` for the client tests: short token lifetimes, a
//! fresh data dir per test, the starter key, and the server's own request
//! log to count what the clients sent.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bearer_auth_client::testing::TestClock;
use bearer_auth_client::{AccessToken, Builder, TokenSource};
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

/// A fresh token lives this long on the test servers (the least allowed).
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// The server mints a successor in the last 30 s (the most allowed: half the TTL).
pub const REFRESH_WINDOW: Duration = Duration::from_secs(30);
/// How long a condition may take to come true on a busy machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// The debug authctl that `cargo build --workspace` puts beside this test binary.
fn authctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/client-<hash> -> target/debug/authctl
    let path = exe.parent().and_then(Path::parent).unwrap().join("authctl");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p authctl` first (scripts/test does)",
        path.display()
    );
    path
}

/// `authctl serve` on a fresh embedded store, stopped when dropped.
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The starter API key (scopes `read write`) it printed on first start.
    pub key: String,
    http: reqwest::Client,
}

impl Server {
    /// Started on a free port (with the client's logs captured).
    pub fn start() -> Self {
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let (child, base, printed) = spawn(dir.path(), "127.0.0.1:0");
        let key = printed
            .split(|c: char| c.is_whitespace() || c == '"')
            .find(|w| w.starts_with("bauth_"))
            .unwrap_or_else(|| panic!("no starter key in {printed}"))
            .to_owned();
        Self {
            dir,
            child: Some(child),
            base,
            key,
            http: reqwest::Client::new(),
        }
    }

    /// A token source builder for this server and its starter key.
    pub fn builder(&self) -> Builder {
        TokenSource::builder(&self.base, &self.key)
    }

    /// A token source with the defaults.
    pub fn source(&self) -> TokenSource {
        self.builder().build().unwrap()
    }

    /// Stops it (SIGKILL: nothing is answered after this returns).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.base.trim_start_matches("http://").to_owned();
        let (child, base, _) = spawn(self.dir.path(), &addr);
        assert_eq!(base, self.base);
        self.child = Some(child);
    }

    /// Sends SIGSTOP or SIGCONT: a stopped server accepts connections (the
    /// kernel does) but answers nothing until continued.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// How many requests to `route` (e.g. `/auth/login`) it has answered,
    /// from its request log: one JSON line per request, written before the
    /// answer goes out.
    pub fn count(&self, route: &str) -> usize {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "request" && l["route"] == route)
            .count()
    }

    /// Everything it logged so far, over every start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `GET /auth/verify` with `token`: the status and body.
    pub async fn verify(&self, token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/auth/verify", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `POST /auth/revoke` with a JSON body, which must succeed.
    pub async fn revoke(&self, body: Value) {
        let response = self
            .http
            .post(format!("{}/auth/revoke", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    /// Revokes one session of the starter key.
    pub async fn revoke_session(&self, session_id: &str) {
        self.revoke(json!({"api_key": self.key, "session_id": session_id}))
            .await;
    }

    /// Revokes the starter key itself.
    pub async fn revoke_key(&self) {
        self.revoke(json!({"api_key": self.key, "revoke_api_key": true}))
            .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A SIGSTOPped process still dies of SIGKILL.
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Starts `authctl serve` on `addr` in `dir`, its log appended to
/// dir/serve.log; returns once it prints `listening on`, with its base URL
/// and everything it printed.
fn spawn(dir: &Path, addr: &str) -> (Child, String, String) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .unwrap();
    let mut child = Command::new(authctl())
        .args(["serve", "--addr", addr, "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("TABLE_NAME")
        .env_remove("SIGNING_SECRET_ARN")
        .env_remove("ISSUER")
        .env("TOKEN_TTL_SECONDS", TOKEN_TTL.as_secs().to_string())
        .env(
            "REFRESH_WINDOW_SECONDS",
            REFRESH_WINDOW.as_secs().to_string(),
        )
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stdout to its end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                child.kill().ok();
                child.wait().ok();
                panic!("authctl serve: no `listening on` ({e}): {printed}");
            }
        };
        printed.push_str(&line);
        printed.push('\n');
        if let Some(base) = line.strip_prefix("listening on ") {
            return (child, base.to_owned(), printed);
        }
    }
}

/// Stops the server, moves `clock` into the margin of `source`'s token
/// (45 s of 60: margin at most 30 s) and waits until the refresh that the
/// next call starts has failed; that call and the wait return the cached
/// token, which is returned.
pub async fn fail_a_refresh(
    server: &mut Server,
    clock: &TestClock,
    source: &TokenSource,
    session: &str,
) -> AccessToken {
    let cached = source.token().await.unwrap();
    server.stop();
    clock.advance(Duration::from_secs(45));
    assert_eq!(source.token().await.unwrap(), cached);
    until("the refresh to fail", async || {
        logs()
            .lines()
            .any(|l| l.contains("token refresh failed") && l.contains(session))
    })
    .await;
    cached
}

/// Waits until `condition` holds, checking every 50 ms; fails after
/// [`PATIENCE`] with `what`.
pub async fn until<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the client crate logged in this test process (at every level),
/// for the tests that look for secrets in it or wait on a log line.
pub fn logs() -> String {
    let captured = captured();
    let bytes = captured.lock().unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Installs the process-wide subscriber that writes into [`logs`]; every
/// test calls it first.
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(Captured)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn captured() -> &'static Mutex<Vec<u8>> {
    static CAPTURED: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    CAPTURED.get_or_init(Mutex::default)
}

#[derive(Clone, Copy)]
struct Captured;

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
