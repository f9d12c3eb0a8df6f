"""Publishing to sockets from synchronous code, always after the transaction commits."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from apps.core.groups import CONTROL_ONLY_PREFIXES, member_group

# The only message a control-only group (a user's sockets across organizations, a session's
# sockets) may carry. Anything else sent there would reach the user's sockets in every
# organization they belong to, including ones the data is not about.
CONTROL_MESSAGE_TYPES = frozenset({"session.close"})

logger = logging.getLogger(__name__)


class PrivateDataToSharedGroup(ValueError):
    """A publisher tried to send data to a group that spans organizations."""


class _Publisher:
    """The process's sender: one thread with one event loop sends what was published, in the
    order it was published, while the request or task that published it goes on.

    A send used to run inline (`async_to_sync`, a fresh event loop and Redis connection each
    time: ~14 ms, several per order). Off the path, an order's acknowledgement no longer waits
    for the cards published on the way. Order is kept (a single FIFO), so a page never sees
    an older state after a newer one. Started on first use in each process (a Celery child
    forked from its parent starts its own); what is still queued when the process exits is
    sent first (atexit, bounded), and a page that missed something re-reads when it reconnects.
    """

    EXIT_WAIT = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, group: str, message: dict[str, Any]) -> None:
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._start()
        self._queue.put((group, message))

    def _start(self) -> None:
        if self._pid != os.getpid():
            # A forked child's copy of the queue may hold its parent's items: not its to send.
            self._queue = queue.SimpleQueue()
            self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="realtime-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while (item := self._queue.get()) is not None:
                group, message = item
                layer = get_channel_layer()
                if layer is None:
                    continue
                try:
                    loop.run_until_complete(layer.group_send(group, message))
                except Exception:
                    # The change has committed; a layer that is down costs the live update only.
                    logger.exception(
                        "realtime: could not send %s to %s", message.get("type"), group
                    )
        finally:
            loop.close()

    def flush(self, timeout: float = EXIT_WAIT) -> None:
        """Send what is queued, waiting at most `timeout` seconds (at exit, and in tests)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None


_publisher = _Publisher()
atexit.register(_publisher.flush)


def publish_flush(timeout: float = _Publisher.EXIT_WAIT) -> None:
    """Wait until what this process published so far has been sent (at most `timeout` s)."""
    _publisher.flush(timeout)


def _send(group: str, message: dict[str, Any]) -> None:
    _publisher.submit(group, message)


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
