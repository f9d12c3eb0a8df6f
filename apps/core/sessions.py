"""How long ago a sign-in session last made a request: the one rule pages and sockets share
to decide that a session has gone idle. Pure functions of the session's data and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

LAST_SEEN_KEY = "last_seen"


def session_last_seen(session: SessionBase | Mapping[str, Any], *, default: float) -> float:
    """When the session last made a request (`default` if it has not been recorded yet).
    An unreadable value cannot vouch for recent activity, so it counts as long ago."""
    try:
        return float(session.get(LAST_SEEN_KEY, default))
    except (TypeError, ValueError):
        return 0.0


def session_is_idle(session: SessionBase | Mapping[str, Any], *, now: float) -> bool:
    return now - session_last_seen(session, default=now) > settings.SESSION_IDLE_TIMEOUT
