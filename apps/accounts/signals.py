"""Signing out ends the session's open sockets too, not just its pages; a lockout is audited."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from apps.accounts.services import lockout_record
from apps.core.groups import session_group
from apps.core.realtime import CLOSE_SIGNED_OUT, close_sockets_on_commit


@receiver(user_logged_out, dispatch_uid="accounts.close_session_sockets")
def close_session_sockets(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key still names the sockets it opened.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        close_sockets_on_commit(session_group(session_key), CLOSE_SIGNED_OUT)


@receiver(user_locked_out, dispatch_uid="accounts.record_lockout")
def record_lockout(sender: Any, request: Any, username: Any = None, **kwargs: Any) -> None:
    """A lockout goes on the audit trail (once per lockout: see lockout_record)."""
    if request is not None and username:
        lockout_record(email=str(username), request=request)
