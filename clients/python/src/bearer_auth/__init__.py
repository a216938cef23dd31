"""Token sources for the bearer-auth service that refresh right.

- :class:`TokenSource` (threads) and :class:`AsyncTokenSource` (asyncio)
  trade an API key for bearer tokens and keep the current one: one login at
  a time, refreshed inside the server's refresh window (capped at half the
  token's lifetime, with jitter), the valid token kept through a failed
  refresh, :class:`TokenError` with a ``reason`` when none is left.
- :class:`HttpxBearerAuth` (httpx, sync and async) and :class:`BearerAuth`
  (requests, an optional dependency) set ``Authorization`` and retry once
  after a 401.

Neither the API key nor a token appears in a repr, a log line or an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._async_source import AsyncTokenSource
from ._errors import TokenError
from ._httpx import HttpxBearerAuth
from ._source import TokenSource

if TYPE_CHECKING:
    from ._requests import BearerAuth

__all__ = ["AsyncTokenSource", "BearerAuth", "HttpxBearerAuth", "TokenError", "TokenSource"]


def __getattr__(name: str) -> Any:
    # requests is optional: imported only when BearerAuth is asked for.
    if name == "BearerAuth":
        from ._requests import BearerAuth

        return BearerAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
