"""The thread-safe token source."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import httpx

from ._common import SourceBase
from ._errors import UNREACHABLE, TokenError
from ._protocol import checked, granted, unreachable


class _Flight:
    """One login in flight: the threads without a token wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Optional[str] = None
        self.error: Optional[TokenError] = None

    def outcome(self) -> str:
        """The token it got, or the error it ended with."""
        if self.token is not None:
            return self.token
        raise self.error or TokenError("login", UNREACHABLE, "the login was interrupted")


class TokenSource(SourceBase):
    """Trades an API key for bearer tokens and keeps the current one.

    ``token()`` returns the cached token while it has more than the refresh
    margin left: ``refresh_window`` (the server's ``REFRESH_WINDOW_SECONDS``,
    default 300), capped at half the token's lifetime, less a jitter of up to
    10 % drawn once per token. One login at a time, whatever the number of
    threads: while the thread that found the token inside the margin
    refreshes it, the others get the cached token at once; threads with no
    valid token wait for that one login and share its result, its error
    included. A failed refresh keeps the valid token and tries again after
    1 s, doubling to 30 s; only with no valid token left does ``token()``
    raise :class:`TokenError`, and the next call tries again.

    Make one per process and share it between threads: each source logs in
    to a session of its own (``session_id``, random unless given).
    """

    def __init__(self, base_url: str, api_key: str, session_id: Optional[str] = None,
                 scope: Optional[str] = None, *, refresh_window: float = 300,
                 token_endpoint: str = "/auth/login", timeout: float = 10,
                 _clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(base_url, api_key, session_id, scope, refresh_window, token_endpoint, timeout, _clock)
        self._http = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._flight: Optional[_Flight] = None

    def token(self) -> str:
        """The current access token; see the class for when it logs in.

        Raises :class:`TokenError` only when no valid token is held and the
        login fails.
        """
        with self._lock:
            now = self._clock()
            held = self._schedule.valid(now)
            if held is not None and (now < held.refresh_at or self._flight is not None):
                return held.token
            flight, leading = self._flight, self._flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leading:
            flight.done.wait()
            return flight.outcome()
        try:
            flight.token = self._login()
            return flight.token
        except TokenError as error:
            flight.error = error
            with self._lock:
                kept = self._failed(error)
            if kept is None:
                raise
            return kept
        finally:
            # Whatever happened (an interrupt included), the next call may log in.
            with self._lock:
                self._flight = None
            flight.done.set()

    def _login(self) -> str:
        url, kwargs = self._service.login_request()
        sent_at = self._logging_in()
        token, expires_in = granted(self._post(url, kwargs, "login"))
        with self._lock:
            return self._logged_in(token, expires_in, sent_at)

    def _post(self, url: str, kwargs: Any, action: str) -> httpx.Response:
        try:
            return self._http.post(url, **kwargs)
        except httpx.HTTPError as error:
            failure = unreachable(action, error)
        # Raised here, it keeps no reference to httpx's error, whose request holds the key.
        raise failure

    def invalidate(self, token: str) -> None:
        """Drops the cached token if it is still ``token`` (one an API
        answered 401 to), so that the next ``token()`` logs in again."""
        with self._lock:
            self._schedule.invalidate(token)

    def revoke(self) -> None:
        """Ends the session (``POST /auth/revoke`` with the cached token).
        The cached token is dropped whatever happens; without one this does
        nothing. Raises :class:`TokenError` if the request fails."""
        with self._lock:
            token = self._schedule.take()
        if token is not None:
            url, kwargs = self._service.revoke_request(token)
            checked("revoke", self._post(url, kwargs, "revoke"))

    def close(self) -> None:
        """Closes the HTTP connections (not the session: see ``revoke``)."""
        self._http.close()

    def __enter__(self) -> "TokenSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
