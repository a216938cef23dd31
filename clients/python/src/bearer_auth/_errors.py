"""The one error of the client: why a login or revoke failed."""

from __future__ import annotations

from typing import Optional

UNREACHABLE = "unreachable"
"""No answer, a timeout, or a 5xx without an error code (as a proxy sends)."""
INVALID_RESPONSE = "invalid_response"
"""An answer that is not the service's (a wrong base URL?)."""


class TokenError(Exception):
    """A login or revoke that failed.

    ``reason`` is the OAuth2 error code the server sent (``invalid_client``,
    ``too_many_sessions``, ``invalid_scope``, ...), or ``unreachable`` or
    ``invalid_response``; ``status`` is the HTTP status, if there was an
    answer. The message holds no key and no token.
    """

    def __init__(self, action: str, reason: str, description: str, status: Optional[int] = None) -> None:
        self.action = action
        self.reason = reason
        self.description = description
        self.status = status
        shown = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{action} failed: {reason}{shown}: {description}")

    @property
    def is_unreachable(self) -> bool:
        """Whether the service could not be reached: worth trying again later."""
        return self.reason == UNREACHABLE
