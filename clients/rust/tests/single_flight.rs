//! Any number of concurrent callers, one login.

use std::sync::Arc;
use std::time::Duration;

use bearer_auth_client::testing::TestClock;
use tokio::sync::Barrier;
use tokio::time::timeout;

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_tasks_on_a_cold_source_cause_one_login() {
    let server = Server::start();
    let source = server.source();
    let barrier = Arc::new(Barrier::new(500));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (source, barrier) = (source.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                source.token().await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    let logins = server.count("/auth/login");
    eprintln!("500 concurrent tasks on a cold source: {logins} login request(s)");
    assert_eq!(logins, 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(server.verify(tokens[0].as_str()).await.0, 200);
}

#[tokio::test]
async fn while_a_refresh_hangs_holders_of_a_valid_token_do_not_wait_and_the_rest_share_it() {
    let server = Server::start();
    let clock = TestClock::new();
    // Longer than the server stays stopped: the refresh hangs, it does not fail.
    let source = server
        .builder()
        .timeout(Duration::from_secs(600))
        .test_clock(clock.clone())
        .build()
        .unwrap();
    let first = source.token().await.unwrap();
    server.signal("STOP");
    // Inside the margin (at most 30 s), before expiry (60 s): the first call
    // starts the refresh, which hangs; every call returns on its first poll.
    clock.advance(Duration::from_secs(45));
    for _ in 0..50 {
        let token = timeout(Duration::ZERO, source.token()).await;
        assert_eq!(
            token.expect("a holder of a valid token waited").unwrap(),
            first
        );
    }
    // Past expiry nobody holds a valid token: these calls wait for the
    // refresh in flight (one poll each to register them; it cannot end
    // while the server is stopped).
    clock.advance(Duration::from_secs(20));
    let mut waiting: Vec<_> = (0..50).map(|_| Box::pin(source.token())).collect();
    for call in &mut waiting {
        assert!(
            timeout(Duration::ZERO, call).await.is_err(),
            "a call without a token did not wait"
        );
    }
    server.signal("CONT");
    let mut tokens = Vec::new();
    for call in waiting {
        tokens.push(call.await.unwrap());
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(
        server.count("/auth/login"),
        2,
        "the waiting calls shared one login"
    );
    assert_eq!(source.token().await.unwrap(), tokens[0], "and it is held");
    assert_eq!(server.count("/auth/login"), 2);
}
