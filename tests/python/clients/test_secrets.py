"""Neither the API key nor a token in any repr, error or log record."""

import logging

import pytest
from conftest import records, until

import bearer_auth


def test_the_key_and_tokens_appear_in_no_repr_error_or_log(server, calls, clock, caplog):
    caplog.set_level(logging.DEBUG)
    c = calls(server.base, server.key, session_id="secrets", _clock=clock)
    token = c.token()
    printed = [repr(c.source), repr(bearer_auth.HttpxBearerAuth(c.source))]
    if c.kind == "sync":
        printed.append(repr(bearer_auth.BearerAuth(c.source)))
    # A failed refresh, then the error once the token has expired.
    server.stop()
    clock.advance(45)
    c.token()
    until("the refresh to fail", lambda: records(caplog, "token refresh failed", "secrets"), c.settle)
    clock.advance(20)
    with pytest.raises(bearer_auth.TokenError) as unreachable:
        c.token()
    server.restart()
    wrong_key = "bauth_" + "0" * 16 + "_" + "1" * 64 + "_" + "2" * 8
    wrong = calls(server.base, wrong_key, session_id="secrets")
    with pytest.raises(bearer_auth.TokenError) as refused:
        wrong.token()
    assert refused.value.reason == "invalid_client"
    current = c.token()
    c.revoke()
    for error in (unreachable.value, refused.value):
        printed += [str(error), repr(error), repr(error.__cause__), repr(error.__context__)]
    printed.append(repr(wrong.source))

    logged = [r for r in caplog.records if getattr(r, "session_id", None) == "secrets"]
    assert any("logged in" in r.getMessage() for r in logged)
    assert any("login failed" in r.getMessage() for r in logged)
    # Everything any logger wrote (httpx and httpcore log at DEBUG too), as formatted.
    printed.append(caplog.text)
    printed += [repr(vars(r)) for r in caplog.records]
    secrets = [server.key, server.key.split("_")[2], wrong_key, wrong_key.split("_")[2],
               token, token.rsplit(".", 1)[1], current]
    for text in printed:
        for secret in secrets:
            assert secret not in text, text


def test_an_unreachable_error_keeps_no_reference_to_the_request(calls):
    """httpx's exception holds the request, whose body holds the key: the
    TokenError neither chains it nor keeps it as its context."""
    c = calls("http://127.0.0.1:9", "bauth_secret", timeout=1)
    with pytest.raises(bearer_auth.TokenError) as error:
        c.token()
    assert error.value.reason == "unreachable"
    assert error.value.__cause__ is None and error.value.__context__ is None
