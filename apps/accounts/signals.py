"""Signing out ends the session's open sockets too, not just its pages."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from apps.core.groups import session_group
from apps.core.realtime import CLOSE_SIGNED_OUT, close_sockets_on_commit


@receiver(user_logged_out, dispatch_uid="accounts.close_session_sockets")
def close_session_sockets(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key still names the sockets it opened.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        close_sockets_on_commit(session_group(session_key), CLOSE_SIGNED_OUT)
