"""Login, verify and revoke as a client calls them: each request a Lambda
invocation through the function URL emulation. Each test logs in on a
session of its own."""

import uuid

import pytest


@pytest.fixture
def session_id():
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def login(key, session_id):
    """The login body for that session."""
    return {"api_key": key["api_key"], "session_id": session_id, "scope": "read write"}


@pytest.fixture
def bearer(watch, login):
    """The Authorization header of a fresh login."""
    status, _, body = watch.post("login", "/auth/login", login)
    assert status == 200, body
    return {"authorization": f"Bearer {body['access_token']}"}


def test_login_issues_a_bearer_token(watch, login):
    status, headers, body = watch.post("login", "/auth/login", login)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200
    assert body["scope"] == "read write"
    assert headers.get("cache-control") == "no-store"


def test_a_second_login_reuses_the_token(watch, login):
    _, _, first = watch.post("login", "/auth/login", login)
    status, _, again = watch.post("login", "/auth/login", login)
    assert status == 200, again
    assert again["access_token"] == first["access_token"]


def test_verify_accepts_the_token(watch, bearer, key, session_id):
    status, _, body = watch.call("verify", "GET", "/auth/verify?scope=read", headers=bearer)
    assert status == 200, body
    assert body["active"] is True
    assert body["sub"] == key["key_id"]
    assert body["session_id"] == session_id


def test_revoke_by_token_ends_its_session(watch, bearer):
    status, _, body = watch.call("revoke", "POST", "/auth/revoke", headers=bearer)
    assert (status, body) == (200, {"revoked": True, "sessions_revoked": 1})


def test_the_next_verify_refuses_the_revoked_token(watch, bearer):
    status, _, body = watch.call("revoke", "POST", "/auth/revoke", headers=bearer)
    assert status == 200, body
    status, headers, body = watch.call("verify", "GET", "/auth/verify", headers=bearer)
    assert status == 401, body
    assert body["error"] == "invalid_token"
    assert body["active"] is False
    assert headers.get("www-authenticate", "").startswith("Bearer")


def test_a_wrong_method_is_405_with_allow(watch):
    status, headers, body = watch.call("login", "GET", "/auth/login")
    assert status == 405, body
    assert headers.get("allow") == "POST"
