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
    """Send `message` to `group` once the surrounding transaction has committed."""
    transaction.on_commit(partial(_send, group, message))
