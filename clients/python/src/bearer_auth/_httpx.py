"""httpx integration: ``Authorization`` on every request, one retry after a 401."""

from __future__ import annotations

from typing import AsyncGenerator, Generator, Union

import httpx

from ._async_source import AsyncTokenSource
from ._source import TokenSource


class HttpxBearerAuth(httpx.Auth):
    """An ``httpx.Auth`` that sets ``Authorization: Bearer <token>`` from a
    source. After a 401 it invalidates that token and sends the request once
    more with a fresh one; a second 401 is returned as it is. A login that
    fails raises :class:`TokenError`.

    With a :class:`TokenSource` it works in ``httpx.Client``; with an
    :class:`AsyncTokenSource` in ``httpx.AsyncClient``.
    """

    # The body is read first, so that the retry can send it again.
    requires_request_body = True

    def __init__(self, source: Union[TokenSource, AsyncTokenSource]) -> None:
        self._source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        source = self._source
        if not isinstance(source, TokenSource):
            raise TypeError("HttpxBearerAuth in an httpx.Client needs a TokenSource")
        token = source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {source.token()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        source = self._source
        if not isinstance(source, AsyncTokenSource):
            raise TypeError("HttpxBearerAuth in an httpx.AsyncClient needs an AsyncTokenSource")
        token = await source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await source.token()}"
            yield request

    def __repr__(self) -> str:
        return f"HttpxBearerAuth({self._source!r})"
