"""When to refresh: the margin and its jitter, the backoff after a failed
refresh, and what each login answer changes. Pure logic on monotonic
seconds, shared by the sync and async sources."""

from __future__ import annotations

import base64
import binascii
import json
import random
from dataclasses import dataclass, field
from typing import Optional

BACKOFF_FIRST = 1.0
"""The first wait after a failed refresh; it doubles per failure."""
BACKOFF_CAP = 30.0
"""The longest wait between failed refreshes."""
SAME_TOKEN_WAIT = 1.0
"""The shortest wait after a refresh that returned the token already held."""


def margin(refresh_window: float, lifetime: float, jitter: float) -> float:
    """How long before expiry to refresh: the refresh window, capped at half
    the lifetime (a 300 s window would otherwise leave a 5 min token
    permanently stale), less ``jitter`` (in [0, 1)) times 10 % of it, so that
    a fleet spreads its refreshes."""
    whole = min(refresh_window, lifetime / 2)
    return whole - whole * 0.1 * min(max(jitter, 0.0), 1.0)


def backoff(failures: int) -> float:
    """The wait after ``failures`` (at least one) failed refreshes in a row."""
    return min(BACKOFF_FIRST * 2 ** min(max(failures - 1, 0), 5), BACKOFF_CAP)


def lifetime_of(token: str) -> Optional[float]:
    """The lifetime the token's ``iat`` and ``exp`` claims state, if it is a
    JWT with both. Decoded, not verified: it only schedules refreshes."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        iat, exp = claims["iat"], claims["exp"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)) or exp <= iat:
        return None
    return float(exp - iat)


@dataclass
class Held:
    """The token held, and when to try replacing it."""

    token: str = field(repr=False)
    expires_at: float
    refresh_at: float


class Schedule:
    """The token a source holds and its refresh plan. Not thread-safe: the
    sources call it under their lock."""

    def __init__(self, refresh_window: float) -> None:
        self._refresh_window = refresh_window
        self._held: Optional[Held] = None
        self._failures = 0

    def valid(self, now: float) -> Optional[Held]:
        """The held token, if it has not expired at ``now``."""
        held = self._held
        return held if held is not None and now < held.expires_at else None

    def granted(self, token: str, expires_in: float, sent_at: float, now: float,
                jitter: Optional[float] = None) -> str:
        """Takes in a login's answer to a request sent at ``sent_at``; returns
        the token to use."""
        self._failures = 0
        expires_at = sent_at + expires_in
        held = self._held
        if held is not None and held.token == token:
            # The server's window is smaller than ours: it keeps the token for
            # now. Asking again at a tenth of the time left keeps logins few.
            held.expires_at = expires_at
            held.refresh_at = now + max(SAME_TOKEN_WAIT, (expires_at - now) / 10)
            return token
        lifetime = lifetime_of(token) or expires_in
        if jitter is None:
            jitter = random.random()
        self._held = Held(token, expires_at, expires_at - margin(self._refresh_window, lifetime, jitter))
        return token

    def failed(self, now: float) -> None:
        """A refresh or login failed at ``now``: with a valid token, the next
        attempt waits (1 s doubling to 30 s); without, every call tries."""
        held = self.valid(now)
        if held is not None:
            self._failures += 1
            held.refresh_at = now + backoff(self._failures)
        else:
            self._held = None
            self._failures = 0

    def invalidate(self, token: str) -> None:
        """Drops the held token if it is ``token``."""
        if self._held is not None and self._held.token == token:
            self._held = None
            self._failures = 0

    def take(self) -> Optional[str]:
        """Drops the held token, whatever it is, and returns it."""
        held, self._held, self._failures = self._held, None, 0
        return held.token if held is not None else None
