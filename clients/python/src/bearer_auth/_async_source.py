"""The asyncio token source."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional, Union

import httpx

from ._common import SourceBase
from ._errors import TokenError
from ._protocol import checked, granted, unreachable

_Outcome = Union[str, TokenError]


class AsyncTokenSource(SourceBase):
    """:class:`TokenSource` for asyncio: the same arguments and rules, with
    ``token()``, ``revoke()`` and ``aclose()`` as coroutines.

    The login runs as a task of its own, so a cancelled caller never cancels
    it: callers holding a valid token get it at once while a refresh runs in
    the background, and callers with none await that one login and share its
    result. Use a source from one event loop.
    """

    def __init__(self, base_url: str, api_key: str, session_id: Optional[str] = None,
                 scope: Optional[str] = None, *, refresh_window: float = 300,
                 token_endpoint: str = "/auth/login", timeout: float = 10,
                 _clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(base_url, api_key, session_id, scope, refresh_window, token_endpoint, timeout, _clock)
        self._http = httpx.AsyncClient(timeout=timeout)
        self._flight: Optional["asyncio.Future[_Outcome]"] = None

    async def token(self) -> str:
        """The current access token; see the class for when it logs in.

        Raises :class:`TokenError` only when no valid token is held and the
        login fails.
        """
        now = self._clock()
        held = self._schedule.valid(now)
        if held is not None:
            if now >= held.refresh_at and self._flight is None:
                self._flight = asyncio.ensure_future(self._login())
            return held.token
        if self._flight is None:
            self._flight = asyncio.ensure_future(self._login())
        outcome = await asyncio.shield(self._flight)
        if isinstance(outcome, TokenError):
            raise outcome
        return outcome

    async def _login(self) -> _Outcome:
        """One login, settled into the schedule. Its error is returned, not
        raised: nobody may be waiting to retrieve it."""
        try:
            url, kwargs = self._service.login_request()
            sent_at = self._logging_in()
            try:
                token, expires_in = granted(await self._post(url, kwargs, "login"))
            except TokenError as error:
                self._failed(error)
                return error
            return self._logged_in(token, expires_in, sent_at)
        finally:
            self._flight = None

    async def _post(self, url: str, kwargs: Any, action: str) -> httpx.Response:
        try:
            return await self._http.post(url, **kwargs)
        except httpx.HTTPError as error:
            failure = unreachable(action, error)
        # Raised here, it keeps no reference to httpx's error, whose request holds the key.
        raise failure

    def invalidate(self, token: str) -> None:
        """Drops the cached token if it is still ``token`` (one an API
        answered 401 to), so that the next ``token()`` logs in again."""
        self._schedule.invalidate(token)

    async def revoke(self) -> None:
        """Ends the session (``POST /auth/revoke`` with the cached token).
        The cached token is dropped whatever happens; without one this does
        nothing. Raises :class:`TokenError` if the request fails."""
        token = self._schedule.take()
        if token is not None:
            url, kwargs = self._service.revoke_request(token)
            checked("revoke", await self._post(url, kwargs, "revoke"))

    async def aclose(self) -> None:
        """Closes the HTTP connections (not the session: see ``revoke``)."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncTokenSource":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
