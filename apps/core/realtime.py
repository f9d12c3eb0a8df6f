"""Publishing to sockets from synchronous code, always after the transaction commits."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.core.groups import CONTROL_ONLY_PREFIXES, member_group

# The only message a control-only group (a user's sockets across organizations, a session's
# sockets) may carry. Anything else sent there would reach the user's sockets in every
# organization they belong to, including ones the data is not about.
CONTROL_MESSAGE_TYPES = frozenset({"session.close"})


class PrivateDataToSharedGroup(ValueError):
    """A publisher tried to send data to a group that spans organizations."""


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, message)


def publish_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send `message` to `group` once the surrounding transaction has committed.

    Robust: a channel layer that is down is logged, never raised into the caller, because the
    change has committed by then (and signing out, for one, must not fail because Redis did).

    Raises PrivateDataToSharedGroup at once (not after commit) for anything but a control
    message to a group that spans organizations (apps.core.groups.user_group, session_group).
    """
    if group.startswith(CONTROL_ONLY_PREFIXES) and message.get("type") not in (
        CONTROL_MESSAGE_TYPES
    ):
        raise PrivateDataToSharedGroup(
            f"{message.get('type')!r} may not be sent to {group.split('.')[0]!r} groups: they "
            "span organizations. Send private events with member_event_on_commit()."
        )
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


def member_event_on_commit(
    *, org_id: int, user_ids: Iterable[int], parts: list[tuple[str, str]]
) -> None:
    """Send pre-rendered parts `[(element_id, html), ...]` to the sockets each user has open in
    organization `org_id`, after commit. The caller chooses who may receive the event (a
    security decision); it never reaches the same user's sockets in another organization."""
    for user_id in sorted(set(user_ids)):
        publish_on_commit(member_group(org_id, user_id), {"type": "fragments", "parts": parts})
