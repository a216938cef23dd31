"""requests integration: ``Authorization`` on every request, one retry after a 401."""

from __future__ import annotations

from typing import Any, Optional

import requests
from requests.cookies import extract_cookies_to_jar

from ._source import TokenSource


class BearerAuth(requests.auth.AuthBase):
    """A ``requests`` auth that sets ``Authorization: Bearer <token>`` from a
    :class:`TokenSource`. After a 401 it invalidates that token and sends the
    request once more with a fresh one (unless its body is a stream that
    cannot be rewound); a second 401 is returned as it is. A login that fails
    raises :class:`TokenError`."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        body: Any = request.body
        # Where a file body starts, to send it again (as requests' digest auth does).
        request._bearer_auth_position = body.tell() if hasattr(body, "tell") else None  # type: ignore[union-attr]
        request.register_hook("response", self._retry_once)
        return request

    def _retry_once(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_bearer_auth_retry", False):
            return response
        body: Any = sent.body
        position: Optional[int] = getattr(sent, "_bearer_auth_position", None)
        if position is not None:
            body.seek(position)
        elif body is not None and not isinstance(body, (bytes, str)):
            return response  # a stream already read: it cannot be sent again
        token = _bearer(sent.headers.get("Authorization"))
        if token is not None:
            self._source.invalidate(token)
        fresh = self._source.token()
        # Free the connection for the retry.
        response.content
        response.close()
        retry = sent.copy()
        extract_cookies_to_jar(retry._cookies, sent, response.raw)  # type: ignore[attr-defined]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = f"Bearer {fresh}"
        retry._bearer_auth_retry = True  # type: ignore[attr-defined]
        again: requests.Response = response.connection.send(retry, **kwargs)  # type: ignore[attr-defined]
        again.history.append(response)
        again.request = retry
        return again

    def __repr__(self) -> str:
        return f"BearerAuth({self._source!r})"


def _bearer(header: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer`` value."""
    if header is None or not header.startswith("Bearer "):
        return None
    return header[len("Bearer "):]
