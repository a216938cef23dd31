"""TokenSource and AsyncTokenSource against the real server: single flight,
refresh, outages, revoke."""

import asyncio
import logging
import threading

import pytest
from conftest import PATIENCE, REFRESH_WINDOW, records, until

import bearer_auth


def test_a_hundred_threads_on_a_cold_source_cause_one_login(server, summary):
    source = bearer_auth.TokenSource(server.base, server.key)
    start = threading.Barrier(100)
    tokens, errors = [], []

    def call():
        start.wait()
        try:
            tokens.append(source.token())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logins = server.count("/auth/login")
    summary.append(f"clients: 100 threads on a cold TokenSource: {logins} login request(s)")
    assert errors == []
    assert len(tokens) == 100 and len(set(tokens)) == 1
    assert logins == 1
    assert server.verify(tokens[0])[0] == 200


def test_a_hundred_coroutines_on_a_cold_async_source_cause_one_login(server, summary):
    async def main():
        async with bearer_auth.AsyncTokenSource(server.base, server.key) as source:
            return await asyncio.gather(*(source.token() for _ in range(100)))

    tokens = asyncio.run(main())
    logins = server.count("/auth/login")
    summary.append(f"clients: 100 coroutines on a cold AsyncTokenSource: {logins} login request(s)")
    assert len(set(tokens)) == 1
    assert logins == 1


def test_a_refresh_inside_the_margin_gets_a_new_token_and_the_old_one_still_verifies(server, summary):
    """Real time, both kinds at once: the server mints a successor only
    inside its own window, 30 s after the first token at the earliest."""

    async def main():
        sync = bearer_auth.TokenSource(server.base, server.key, refresh_window=REFRESH_WINDOW)
        async with bearer_auth.AsyncTokenSource(server.base, server.key, refresh_window=REFRESH_WINDOW) as a:
            first = {"sync": sync.token(), "async": await a.token()}
            latest, calls = dict(first), 0
            deadline = asyncio.get_running_loop().time() + PATIENCE
            while any(latest[k] == first[k] for k in first):
                assert asyncio.get_running_loop().time() < deadline, "no new token"
                await asyncio.sleep(0.05)
                latest = {"sync": await asyncio.to_thread(sync.token), "async": await a.token()}
                calls += 1
            sync.close()
            return first, latest, calls

    first, latest, calls = asyncio.run(main())
    for kind in first:
        status, old = server.verify(first[kind])
        assert status == 200, f"{kind}: the old token still verifies: {old}"
        status, new = server.verify(latest[kind])
        assert status == 200, new
        assert new["session_id"] == old["session_id"]
        assert new["exp"] > old["exp"]
    logins = server.count("/auth/login")
    summary.append(f"clients: refresh in both kinds: {logins} logins for {2 * calls} calls")
    assert logins < calls


def test_with_the_server_down_the_cached_token_lasts_until_expiry_then_unreachable_and_a_restart_recovers(
        server, calls, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="bearer_auth")
    c = calls(server.base, server.key, session_id="outage", _clock=clock)
    first = c.token()
    server.stop()
    # Inside the margin (at most 30 s), before expiry (60 s): the refresh fails.
    clock.advance(45)
    assert c.token() == first
    until("the refresh to fail", lambda: records(caplog, "token refresh failed", "outage"), c.settle)
    for _ in range(10):
        assert c.token() == first, "kept after the failure"
    assert len(records(caplog, "logging in", "outage")) == 2, "backing off, not retrying each call"
    # Past expiry: a clear error, and again on the next call (it tries each time).
    clock.advance(20)
    for _ in range(3):
        with pytest.raises(bearer_auth.TokenError) as error:
            c.token()
        assert error.value.reason == "unreachable"
        assert error.value.is_unreachable
        assert str(error.value).startswith("login failed: unreachable")
    server.restart()
    token = c.token()
    assert server.verify(token)[0] == 200
    assert c.token() == token, "cached again"


def test_while_a_refresh_hangs_other_threads_with_a_valid_token_do_not_wait(server, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="bearer_auth")
    # Longer than the server stays paused: the refresh hangs, it does not fail.
    source = bearer_auth.TokenSource(server.base, server.key, session_id="hang", timeout=600, _clock=clock)
    first = source.token()
    server.pause()
    clock.advance(45)
    refresher = threading.Thread(target=source.token)
    refresher.start()
    until("the refresh to start", lambda: len(records(caplog, "logging in", "hang")) == 2)
    others = []
    reader = threading.Thread(target=lambda: others.extend(source.token() for _ in range(50)))
    reader.start()
    # A reader that waited for the refresh would still be waiting: it cannot end while paused.
    reader.join(PATIENCE)
    server.resume()
    refresher.join()
    assert not reader.is_alive() and others == [first] * 50, "a holder of a valid token waited"
    assert server.count("/auth/login") == 2


def test_revoke_ends_the_session_and_the_next_call_logs_in_again(server, calls):
    c = calls(server.base, server.key)
    first = c.token()
    assert c.revoke() is None
    assert server.verify(first)[0] == 401
    second = c.token()
    assert second != first
    assert server.verify(second)[0] == 200
    assert server.count("/auth/login") == 2


def test_revoke_without_a_token_sends_nothing(server, calls):
    c = calls(server.base, server.key)
    c.revoke()
    assert server.count("/auth/revoke") == 0


def test_a_failed_revoke_raises_and_still_drops_the_token(server, calls):
    c = calls(server.base, server.key)
    first = c.token()
    server.stop()
    with pytest.raises(bearer_auth.TokenError) as error:
        c.revoke()
    assert error.value.reason == "unreachable"
    assert str(error.value).startswith("revoke failed")
    server.restart()
    # Dropped: the next call logs in (the session is alive: the same token).
    assert c.token() == first
    assert server.count("/auth/login") == 2


def test_each_source_gets_a_random_session_of_its_own(server, calls):
    sessions = {server.verify(calls(server.base, server.key).token())[1]["session_id"] for _ in range(2)}
    assert len(sessions) == 2
    assert all(s.startswith("py-") for s in sessions)


def test_the_oauth2_endpoint_logs_in_to_the_same_session_with_the_scope_asked_for(server, calls):
    oauth2 = calls(server.base, server.key, "reports", "read", token_endpoint="/oauth2/token").token()
    login = calls(server.base, server.key, "reports", "read").token()
    assert oauth2 == login, "one session, one token"
    status, body = server.verify(oauth2)
    assert status == 200
    assert body["scope"] == "read" and body["session_id"] == "reports"
    assert server.count("/oauth2/token") == 1


def test_a_wrong_key_fails_with_the_servers_reason(server, calls):
    c = calls(server.base, "bauth_" + "0" * 16 + "_" + "1" * 64 + "_" + "2" * 8)
    for _ in range(2):
        with pytest.raises(bearer_auth.TokenError) as error:
            c.token()
        assert error.value.reason == "invalid_client"
        assert error.value.status == 401
    assert server.count("/auth/login") == 2, "every call tries when no token is held"


@pytest.mark.parametrize("kwargs", [{"base_url": "ftp://x"}, {"base_url": "x"}, {"token_endpoint": "/other"}])
def test_bad_arguments_are_refused_at_once(kwargs):
    arguments = {"base_url": "http://127.0.0.1:1", "api_key": "bauth_x", **kwargs}
    for kind in (bearer_auth.TokenSource, bearer_auth.AsyncTokenSource):
        with pytest.raises(ValueError):
            kind(**arguments)
