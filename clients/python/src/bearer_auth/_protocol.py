"""The service's HTTP calls, as data: what a login or revoke sends and what
its answer means. Shared by the sync and async sources; no I/O here."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import httpx

from ._errors import INVALID_RESPONSE, UNREACHABLE, TokenError

TOKEN_ENDPOINTS = ("/auth/login", "/oauth2/token")


@dataclass(frozen=True)
class Service:
    """Where and how a source logs in. The key never shows in its repr."""

    base_url: str
    api_key: str = field(repr=False)
    session_id: str
    scope: Optional[str]
    token_endpoint: str
    timeout: float

    @staticmethod
    def of(base_url: str, api_key: str, session_id: Optional[str], scope: Optional[str],
           token_endpoint: str, timeout: float, prefix: str) -> "Service":
        """Checks the arguments; the default session is random per source."""
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if token_endpoint not in TOKEN_ENDPOINTS:
            raise ValueError(f"token_endpoint must be one of {TOKEN_ENDPOINTS}")
        if session_id is None:
            session_id = f"{prefix}-{secrets.token_hex(8)}"
        return Service(base_url.rstrip("/"), api_key, session_id, scope, token_endpoint, timeout)

    def login_request(self) -> Tuple[str, Dict[str, Any]]:
        """The URL and httpx arguments of one login request."""
        url = self.base_url + self.token_endpoint
        if self.token_endpoint == "/oauth2/token":
            # client_secret_post: the key id is the key's public part.
            key_id = self.api_key[len("bauth_"):].split("_")[0] if self.api_key.startswith("bauth_") else ""
            form = {"grant_type": "client_credentials", "client_id": key_id,
                    "client_secret": self.api_key, "session_id": self.session_id}
            if self.scope is not None:
                form["scope"] = self.scope
            return url, {"data": form}
        body = {"api_key": self.api_key, "session_id": self.session_id}
        if self.scope is not None:
            body["scope"] = self.scope
        return url, {"json": body}

    def revoke_request(self, token: str) -> Tuple[str, Dict[str, Any]]:
        """The URL and httpx arguments of a revoke of ``token``'s session."""
        return self.base_url + "/auth/revoke", {"headers": {"Authorization": f"Bearer {token}"}}


def unreachable(action: str, error: httpx.HTTPError) -> TokenError:
    """No answer. httpx's message names the URL only, never a body."""
    timeout = isinstance(error, httpx.TimeoutException)
    return TokenError(action, UNREACHABLE, "no answer in time" if timeout else "no answer")


def granted(response: httpx.Response) -> Tuple[str, float]:
    """A login answer's token and ``expires_in``, or the error it carries."""
    body = checked("login", response)
    try:
        token, kind, expires_in = body["access_token"], body["token_type"], body["expires_in"]
    except (TypeError, KeyError):
        raise TokenError("login", INVALID_RESPONSE, "the answer is not a token", response.status_code) from None
    if (not isinstance(token, str) or not token or not token.isascii() or not token.isprintable()
            or " " in token or not isinstance(kind, str) or kind.lower() != "bearer"
            or not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 0):
        raise TokenError("login", INVALID_RESPONSE, "the answer is not a bearer token", response.status_code)
    return token, float(expires_in)


def checked(action: str, response: httpx.Response) -> Any:
    """A 2xx answer's JSON body, or the error it carries."""
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if 200 <= status < 300:
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        raise TokenError(action, body["error"], description if isinstance(description, str) else "no description",
                         status)
    # No error code: a proxy or load balancer answered, not the service.
    if status >= 500:
        raise TokenError(action, UNREACHABLE, "the service is unavailable", status)
    raise TokenError(action, INVALID_RESPONSE, "the answer is not the service's", status)
