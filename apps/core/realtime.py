"""Publishing to sockets from synchronous code, always after the transaction commits."""

from __future__ import annotations

from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, message)


def publish_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send `message` to `group` once the surrounding transaction has committed.

    Robust: a channel layer that is down is logged, never raised into the caller, because the
    change has committed by then (and signing out, for one, must not fail because Redis did)."""
    transaction.on_commit(partial(_send, group, message), robust=True)


# How the server closes a socket tells the page what to do next. Browsers' htmx WebSocket
# extension reconnects by itself only after 1006, 1011, 1012 and 1013.
CLOSE_REAUTHORISE = 1012  # "service restart": reconnect, and the server decides afresh
CLOSE_SIGNED_OUT = 4401  # the session ended (signed out, idle, expired): sign in again
CLOSE_FORBIDDEN = 4403  # not, or no longer, allowed here: reconnecting would not help
CLOSE_CODES = frozenset({CLOSE_REAUTHORISE, CLOSE_SIGNED_OUT, CLOSE_FORBIDDEN})


def close_sockets_on_commit(group: str, code: int) -> None:
    """Close every socket in `group` with `code`, once the change that ends them has committed."""
    publish_on_commit(group, {"type": "session.close", "code": code})
