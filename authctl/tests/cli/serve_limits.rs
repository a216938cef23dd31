//! `authctl serve` against clients that misbehave: half-sent requests, idle
//! connections, more connections than it serves, requests for another Host.
//! Timeouts are short flags here; every wait has a generous upper bound, so a
//! busy machine makes a test slower, never red.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::raw::{End, PATIENCE, Raw, get};
use super::support::Authctl;

fn host(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Asserts `raw` is closed by the server no sooner than `after` from its
/// opening; returns what it sent first.
fn closed_after(raw: &mut Raw, after: Duration) -> Vec<u8> {
    let (end, elapsed, bytes) = raw.end();
    assert_eq!(end, End::Closed, "still open after {PATIENCE:?}");
    assert!(
        elapsed >= after,
        "closed after {elapsed:?}, before {after:?}"
    );
    bytes
}

/// Asserts the server still answers a well-formed request on a new connection.
fn still_answers(port: u16) {
    let answer = Raw::open(port)
        .exchange(&get("/nowhere", &host(port)))
        .unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[test]
fn a_request_whose_headers_never_finish_is_dropped_after_the_request_timeout() {
    let authctl = Authctl::embedded();
    let server = authctl.serve_with(&["--request-timeout", "1s"], &[]);
    let port = server.port();
    let mut raw = Raw::open(port);
    raw.send(
        format!(
            "GET /auth/verify HTTP/1.1\r\nHost: {}\r\nAuthoriz",
            host(port)
        )
        .as_bytes(),
    );
    let sent = closed_after(&mut raw, Duration::from_secs(1));
    assert!(sent.is_empty(), "dropped without an answer: {sent:?}");
    // A connection that never sends a byte is dropped the same way.
    let mut silent = Raw::open(port);
    assert!(closed_after(&mut silent, Duration::from_secs(1)).is_empty());
    still_answers(port);
}

#[test]
fn a_request_whose_body_never_finishes_gets_408_and_is_closed() {
    let authctl = Authctl::embedded();
    let server = authctl.serve_with(&["--request-timeout", "1s"], &[]);
    let port = server.port();
    let mut raw = Raw::open(port);
    raw.send(
        format!(
            "POST /auth/login HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\n\
             content-length: 100\r\n\r\n{{\"api_key\": \"bauth_",
            host(port)
        )
        .as_bytes(),
    );
    let answer = raw.answer().expect("a 408 before the close");
    assert!(raw.opened.elapsed() >= Duration::from_secs(1), "{answer:?}");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(
        answer.json().unwrap()["error"],
        "invalid_request",
        "{answer:?}"
    );
    assert!(closed_after(&mut raw, Duration::from_secs(1)).is_empty());
    still_answers(port);
}

#[test]
fn an_idle_keep_alive_connection_lives_past_the_request_timeout_and_closes_after_the_idle_timeout()
{
    let authctl = Authctl::embedded();
    let server = authctl.serve_with(&["--request-timeout", "1s", "--idle-timeout", "6s"], &[]);
    let port = server.port();
    let mut raw = Raw::open(port);
    assert_eq!(
        raw.exchange(&get("/nowhere", &host(port))).unwrap().status,
        404
    );
    // Idle for twice the request timeout: the connection still serves.
    std::thread::sleep(Duration::from_secs(2));
    // The server answers after this, so it idles from later than this.
    let sent = raw.opened.elapsed();
    let answer = raw.exchange(&get("/nowhere", &host(port)));
    assert_eq!(
        answer.map(|a| a.status),
        Some(404),
        "idle is not a slow request"
    );
    assert!(closed_after(&mut raw, sent + Duration::from_secs(6)).is_empty());
}

#[test]
fn connections_past_the_cap_are_answered_503_until_one_closes() {
    let authctl = Authctl::embedded();
    let server = authctl.serve_with(&["--max-connections", "4"], &[]);
    let port = server.port();
    let mut held: Vec<Raw> = (0..4)
        .map(|_| {
            let mut raw = Raw::open(port);
            assert_eq!(
                raw.exchange(&get("/nowhere", &host(port))).unwrap().status,
                404
            );
            raw
        })
        .collect();
    let mut fifth = Raw::open(port);
    let answer = fifth.exchange(&get("/nowhere", &host(port))).unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.json().unwrap()["error"], "temporarily_unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
    assert_eq!(fifth.end().0, End::Closed, "a shed connection is closed");
    // The four still serve.
    for raw in &mut held {
        assert_eq!(
            raw.exchange(&get("/nowhere", &host(port))).unwrap().status,
            404
        );
    }
    drop(held.pop());
    // The server notices the close in its own time; a new connection is
    // served as soon as it has.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = Raw::open(port)
            .exchange(&get("/nowhere", &host(port)))
            .unwrap();
        if answer.status == 404 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_request_for_another_host_is_misdirected_unless_named_by_public_host() {
    let authctl = Authctl::embedded();
    let server = authctl.serve(&[]);
    let port = server.port();
    for own in [
        host(port),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = Raw::open(port).exchange(&get("/nowhere", &own)).unwrap();
        assert_eq!(answer.status, 404, "{own}: {answer:?}");
    }
    for foreign in [
        format!("rebound.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".to_owned(),
    ] {
        let answer = Raw::open(port)
            .exchange(&get("/nowhere", &foreign))
            .unwrap();
        assert_eq!(answer.status, 421, "{foreign}: {answer:?}");
        assert_eq!(
            answer.json().unwrap()["error"],
            "invalid_request",
            "{answer:?}"
        );
    }
    // HTTP/1.0 without a Host: refused too, as malformed.
    let answer = Raw::open(port)
        .exchange(b"GET /nowhere HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.json().unwrap()["error"], "invalid_request");
    drop(server);

    let server = authctl.serve_with(
        &[
            "--public-host",
            "auth.example.test",
            "--public-host",
            "10.1.2.3:8443",
        ],
        &[],
    );
    let port = server.port();
    for (admitted, status) in [
        ("auth.example.test", 404),
        ("Auth.Example.Test:443", 404),
        ("10.1.2.3:8443", 404),
        ("10.1.2.3:8444", 421),
        ("rebound.example", 421),
    ] {
        let answer = Raw::open(port)
            .exchange(&get("/nowhere", admitted))
            .unwrap();
        assert_eq!(answer.status, status, "{admitted}: {answer:?}");
    }
    let refused = authctl.run(&["serve", "--public-host", "user@host"]);
    refused.fails(2, "--public-host");
}

#[test]
fn out_of_file_descriptors_the_server_pauses_logs_rarely_and_recovers() {
    let authctl = Authctl::embedded();
    let server = authctl.serve(&[]);
    let port = server.port();
    still_answers(port);
    let pid = server.pid();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // Room for two more descriptors: the third connection's accept fails.
    let limit = format!("--nofile={0}:{0}", open_fds + 2);
    let prlimit = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .unwrap();
    assert!(prlimit.success(), "prlimit {limit}");
    let started = Instant::now();
    let held: Vec<Raw> = (0..20).map(|_| Raw::open(port)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log();
    let lines = log.matches("accept failed").count();
    let seconds = started.elapsed().as_secs();
    assert!(lines >= 1, "the failure is logged: {log}");
    assert!(
        lines as u64 <= seconds + 2,
        "{lines} lines in {seconds} s: {log}"
    );
    drop(held);
    // Freed descriptors: the queued connections are accepted and closed,
    // and the next one is served.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Raw::open(port).exchange(&get("/nowhere", &host(port))) {
            Some(answer) if answer.status == 404 => break,
            other => assert!(Instant::now() < deadline, "never served again: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_data_dir_is_0700_and_the_database_files_0600() {
    let authctl = Authctl::embedded();
    std::fs::create_dir(authctl.data_dir()).unwrap();
    std::fs::set_permissions(authctl.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = authctl.serve(&[]);
    // A login writes: the WAL and its index exist while the server runs.
    let key = server.starter_key().unwrap();
    server.login(&key, "default");
    let mode = |name: &str| {
        let path = authctl.data_dir().join(name);
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700);
    for file in ["auth.db", "auth.db-wal", "auth.db-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    let log = server.log();
    assert!(
        log.contains(&format!(
            "narrowed {} from 755 to 700",
            authctl.data_dir().display()
        )),
        "one line says the existing dir was narrowed: {log}"
    );
}

#[test]
fn serve_refuses_timeouts_and_caps_out_of_range() {
    let authctl = Authctl::embedded();
    for args in [
        &["serve", "--request-timeout", "0"][..],
        &["serve", "--request-timeout", "10m"],
        &["serve", "--idle-timeout", "500ms"],
        &["serve", "--idle-timeout", "2h"],
        &["serve", "--max-connections", "0"],
        &["serve", "--max-connections", "100001"],
    ] {
        let run = authctl.run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(args[1]), "{args:?}: {run:?}");
    }
    assert!(!authctl.data_dir().exists(), "nothing was started");
}
