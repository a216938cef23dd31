"""HttpxBearerAuth (sync and async) and BearerAuth (requests): one retry
after a 401, never more."""

import asyncio

import httpx
import pytest
import requests

import bearer_auth


class Client:
    """One HTTP client with the library's auth: `httpx`, `httpx-async` or `requests`."""

    def __init__(self, kind, base, key, **kwargs):
        self.kind = kind
        if kind == "httpx":
            self.source = bearer_auth.TokenSource(base, key, **kwargs)
            self.http = httpx.Client(auth=bearer_auth.HttpxBearerAuth(self.source))
        elif kind == "httpx-async":
            self.loop = asyncio.new_event_loop()
            self.source = bearer_auth.AsyncTokenSource(base, key, **kwargs)
            self.http = httpx.AsyncClient(auth=bearer_auth.HttpxBearerAuth(self.source))
        else:
            self.source = bearer_auth.TokenSource(base, key, **kwargs)
            self.http = requests.Session()
            self.http.auth = bearer_auth.BearerAuth(self.source)

    def request(self, method, url, **kwargs):
        """The status and JSON body."""
        if self.kind == "httpx-async":
            response = self.loop.run_until_complete(self.http.request(method, url, **kwargs))
        else:
            response = self.http.request(method, url, **kwargs)
        return response.status_code, response.json()

    def token(self):
        if self.kind == "httpx-async":
            return self.loop.run_until_complete(self.source.token())
        return self.source.token()

    def close(self):
        if self.kind == "httpx-async":
            self.loop.run_until_complete(self.http.aclose())
            self.loop.run_until_complete(self.source.aclose())
            self.loop.close()
        else:
            self.http.close()
            self.source.close()


@pytest.fixture(params=["httpx", "httpx-async", "requests"])
def client(request, server):
    made = []

    def make(**kwargs):
        made.append(Client(request.param, server.base, server.key, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_requests_carry_the_sources_token(server, client):
    c = client()
    for _ in range(3):
        assert c.request("GET", f"{server.base}/auth/verify")[0] == 200
    assert server.count("/auth/login") == 1


def test_after_its_session_is_revoked_a_request_logs_in_again_once_and_succeeds(server, client):
    c = client(session_id="worker-1")
    assert c.request("GET", f"{server.base}/auth/verify")[0] == 200
    before = c.token()
    server.revoke(session_id="worker-1")
    status, body = c.request("GET", f"{server.base}/auth/verify")
    assert status == 200, body
    assert c.token() != before, "a new token"
    assert server.count("/auth/login") == 2, "one login again"
    assert server.count("/auth/verify") == 3, "the 401 and its one retry"


def test_after_its_key_is_revoked_a_request_retries_once_then_fails_with_the_reason(server, client):
    c = client()
    assert c.request("GET", f"{server.base}/auth/verify")[0] == 200
    server.revoke(revoke_api_key=True)
    for round in (1, 2):
        with pytest.raises(bearer_auth.TokenError) as error:
            c.request("GET", f"{server.base}/auth/verify")
        assert error.value.reason == "invalid_client"
        assert error.value.status == 401
        # Each call logs in once more; only the first had a token to send.
        assert server.count("/auth/login") == 1 + round
        assert server.count("/auth/verify") == 2


def test_a_401_after_the_one_retry_is_returned_as_it_is(server, client):
    c = client()
    # Introspection wants client credentials, not a bearer token: always 401.
    status, body = c.request("POST", f"{server.base}/oauth2/introspect", data={"token": "anything"})
    assert status == 401
    assert body["error"] == "invalid_client"
    assert server.count("/oauth2/introspect") == 2, "one retry"
    # The session is alive, so the second login returned the same token.
    assert server.count("/auth/login") == 2


def test_the_httpx_auth_refuses_a_source_of_the_other_kind(server):
    sync_source = bearer_auth.TokenSource(server.base, server.key)
    with httpx.Client(auth=bearer_auth.HttpxBearerAuth(bearer_auth.AsyncTokenSource(server.base, server.key))) as c:
        with pytest.raises(TypeError):
            c.get(f"{server.base}/auth/verify")

    async def call():
        async with httpx.AsyncClient(auth=bearer_auth.HttpxBearerAuth(sync_source)) as c:
            await c.get(f"{server.base}/auth/verify")

    with pytest.raises(TypeError):
        asyncio.run(call())
    assert server.count("/auth/verify") == 0
