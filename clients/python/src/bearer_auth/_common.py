"""What the sync and async sources share: their arguments, repr and log lines."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from ._errors import TokenError
from ._protocol import Service
from ._schedule import Schedule

log = logging.getLogger("bearer_auth")
"""The library's logger: session ids and reasons, never a key or a token."""


class SourceBase:
    """The state of a source, less its HTTP client and locking."""

    def __init__(self, base_url: str, api_key: str, session_id: Optional[str], scope: Optional[str],
                 refresh_window: float, token_endpoint: str, timeout: float,
                 clock: Callable[[], float]) -> None:
        self._service = Service.of(base_url, api_key, session_id, scope, token_endpoint, timeout, "py")
        self._clock = clock
        self._schedule = Schedule(refresh_window)

    @property
    def session_id(self) -> str:
        """The session this source logs in to."""
        return self._service.session_id

    def _logging_in(self) -> float:
        """Logs the start of a login and returns when it was sent."""
        log.debug("logging in", extra={"session_id": self.session_id})
        return self._clock()

    def _logged_in(self, token: str, expires_in: float, sent_at: float) -> str:
        """Takes in a login's answer (under the caller's lock, if any)."""
        log.debug("logged in", extra={"session_id": self.session_id, "expires_in": expires_in})
        return self._schedule.granted(token, expires_in, sent_at, self._clock())

    def _failed(self, error: TokenError) -> Optional[str]:
        """Takes in a failed login (under the caller's lock, if any); returns
        the token still valid, if one is."""
        now = self._clock()
        self._schedule.failed(now)
        held = self._schedule.valid(now)
        if held is None:
            log.warning("login failed: %s", error.reason, extra={"session_id": self.session_id})
            return None
        log.warning("token refresh failed (%s); keeping the current token", error.reason,
                    extra={"session_id": self.session_id})
        return held.token

    def __repr__(self) -> str:
        service = self._service
        return (f"{type(self).__name__}(base_url={service.base_url!r}, session_id={service.session_id!r}, "
                f"scope={service.scope!r}, api_key='[redacted]')")
