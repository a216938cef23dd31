//! Running the real `authctl` binary: one command at a time, or `serve` as a
//! child process that is killed when its guard drops.

// Shared by the CLI test targets, each of which uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a process may take to start or stop on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The authctl binary cargo built for these tests.
pub fn authctl_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_authctl"))
}

/// What one command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|_| panic!("not JSON: {}", self.stdout))
    }

    /// Asserts a failure with `code` and a one-line `message` on stderr, nothing on stdout.
    pub fn fails(&self, code: i32, message: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(message), "{message:?} not in {self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// `authctl` on one backend, run from a temporary working directory.
pub struct Authctl {
    /// The working directory, and the data dir of the embedded store.
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The binary to run: the debug build next to the tests unless set.
    binary: Option<PathBuf>,
}

impl Authctl {
    /// The embedded store in a fresh temporary data dir.
    pub fn embedded() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            binary: None,
        }
    }

    /// The embedded store, run by `binary` instead of the debug build.
    pub fn embedded_with(binary: PathBuf) -> Self {
        Self {
            binary: Some(binary),
            ..Self::embedded()
        }
    }

    /// A fresh DynamoDB table and signing secret in moto, made by `authctl setup`.
    pub fn dynamodb() -> Self {
        let mut authctl = Self::embedded();
        let table = auth_tests::unique("cli");
        let setup = authctl.ok(&["setup", "--table", &table]).stdout;
        assert!(setup.contains(&format!("TABLE_NAME={table}\n")), "{setup}");
        let arn = setup
            .lines()
            .find_map(|l| l.strip_prefix("SIGNING_SECRET_ARN="))
            .unwrap_or_else(|| panic!("no ARN in {setup}"))
            .to_owned();
        authctl.env = vec![
            ("TABLE_NAME".into(), table),
            ("SIGNING_SECRET_ARN".into(), arn),
        ];
        authctl
    }

    /// The data dir of the embedded store.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// This backend's table, if it is DynamoDB.
    pub fn table(&self) -> Option<&str> {
        self.env("TABLE_NAME")
    }

    /// A variable this backend sets.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The command line a user would type, with this backend's settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binary.clone().unwrap_or_else(authctl_path));
        command
            .current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("TABLE_NAME")
            .env_remove("SIGNING_SECRET_ARN")
            .env_remove("ISSUER")
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs one command to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        output(self.command(args))
    }

    /// Runs one command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "authctl {args:?}: {run:?}");
        run
    }

    /// `keys create --json`: the new key as `{"api_key", "key_id", "name", "scopes"}`.
    pub fn create_key(&self, name: &str, scopes: &str) -> Value {
        self.ok(&[
            "keys", "create", "--name", name, "--scopes", scopes, "--json",
        ])
        .json()
    }

    /// `authctl serve --addr 127.0.0.1:0` on this backend, with `env` added.
    pub fn serve(&self, env: &[(&str, &str)]) -> Server {
        self.serve_with(&[], env)
    }

    /// `authctl serve --addr 127.0.0.1:0` with `args` and `env` added.
    pub fn serve_with(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = self.command(&[&["serve", "--addr", "127.0.0.1:0"], args].concat());
        let log = std::fs::File::create(self.dir.path().join("serve.log")).unwrap();
        command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log);
        Server::start(command, self.dir.path().join("serve.log"))
    }
}

/// Runs `command` to its end.
pub fn output(mut command: Command) -> Run {
    let out = command.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `authctl serve` as a child process; killed when dropped.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`, as the server printed it.
    pub base: String,
    /// Everything it printed up to and including the `listening on` line.
    pub printed: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(mut command: Command, log: PathBuf) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            log,
            base: String::new(),
            printed: String::new(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        };
        // The listening line comes last, after any starter key: once it is
        // out, the banner is complete and requests are answered.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.lines.recv_timeout(left) {
                Ok(line) => {
                    server.printed.push_str(&line);
                    server.printed.push('\n');
                    if let Some(base) = line.strip_prefix("listening on ") {
                        server.base = base.to_owned();
                        return server;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no `listening on` line in {PATIENCE:?}: {}",
                        server.output()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("serve exited early: {}", server.output())
                }
            }
        }
    }

    /// What it printed so far and its log, for a failure message.
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.printed, self.log())
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        let port = self.base.rsplit(':').next().unwrap();
        port.parse()
            .unwrap_or_else(|_| panic!("no port in {}", self.base))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The starter key from the banner, if one was printed: its first key.
    pub fn starter_key(&self) -> Option<String> {
        self.printed_keys().next()
    }

    /// The console's root key from the banner, printed after the starter key.
    pub fn console_key(&self) -> Option<String> {
        let starter = self.starter_key()?;
        self.printed_keys().find(|k| *k != starter)
    }

    fn printed_keys(&self) -> impl Iterator<Item = String> {
        self.printed
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter(|w| w.starts_with("bauth_"))
            .map(str::to_owned)
    }

    /// Any request; the status and JSON body, whatever the status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = if body.is_empty() {
            request.call()
        } else {
            request.send_string(body)
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path} failed: {e}\n{}", self.output()),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    /// A JSON POST.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            &body.to_string(),
        )
    }

    /// Logs in to `session` and returns the token.
    pub fn login(&self, api_key: &str, session: &str) -> String {
        let (status, body) = self.post(
            "/auth/login",
            &json!({"api_key": api_key, "session_id": session}),
        );
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET /auth/verify` with a bearer token.
    pub fn verify(&self, token: &str) -> (u16, Value) {
        self.verify_scope(token, None)
    }

    /// `GET /auth/verify?scope=...` with a bearer token.
    pub fn verify_scope(&self, token: &str, scope: Option<&str>) -> (u16, Value) {
        let path = match scope {
            Some(s) => format!("/auth/verify?scope={}", s.replace(' ', "%20")),
            None => "/auth/verify".to_owned(),
        };
        self.request(
            "GET",
            &path,
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
    }

    /// Sends `signal` (e.g. "INT" for Ctrl-C) and waits for the process to
    /// end; its exit status and everything it printed after the banner.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let kill = output({
            let mut kill = Command::new("kill");
            kill.args([&format!("-{signal}"), &pid]);
            kill
        });
        assert_eq!(kill.code, 0, "{kill:?}");
        let deadline = Instant::now() + PATIENCE;
        let mut rest = String::new();
        loop {
            // The reader thread ends when the process closes stdout.
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    rest.push_str(&line);
                    rest.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        return (status, rest);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop on SIG{signal} in {PATIENCE:?}: {rest}\n{}",
                self.output()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
