"""Per-process fan-out of the public market groups to the sockets this process serves.

The feeder sends each rendered batch once to a channel-layer group. Letting every socket join
that group directly means the channel layer decodes the batch and dispatches a handler once per
socket; at a thousand sockets that bookkeeping, not the network, is what limits the server.
Instead each server process joins the group once, through one channel of its own, decodes each
batch once and drops the parts into every local socket's latest-wins buffer (see
MarketConsumer). Private groups (user, member) stay ordinary per-socket channel-layer groups:
who may receive those is decided per person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    def enqueue(self, parts: list[Any]) -> None: ...


class LocalHub:
    def __init__(self) -> None:
        self.subscribers: dict[str, set[Subscriber]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}

    async def join(self, group: str, subscriber: Subscriber) -> None:
        """Deliver `group`'s batches to `subscriber` from now on (after this returns)."""
        self.subscribers.setdefault(group, set()).add(subscriber)
        if group not in self._tasks or self._tasks[group].done():
            self._ready[group] = asyncio.Event()
            self._tasks[group] = asyncio.create_task(self._pump(group))
        await self._ready[group].wait()

    def leave(self, group: str, subscriber: Subscriber) -> None:
        members = self.subscribers.get(group)
        if members is not None:
            members.discard(subscriber)

    async def _pump(self, group: str) -> None:
        """Receive the group's batches for as long as the process lives, surviving Redis blips."""
        while True:
            try:
                await self._pump_once(group)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("market hub: lost %s; rejoining", group)
                await asyncio.sleep(1)

    async def _pump_once(self, group: str) -> None:
        layer: Any = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        self._ready[group].set()
        try:
            while True:
                message = await layer.receive(channel)
                parts = message.get("parts") or []
                for subscriber in list(self.subscribers.get(group, ())):
                    try:
                        subscriber.enqueue(parts)
                    except Exception:
                        logger.exception("market hub: a socket refused a batch")
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalHub] = weakref.WeakKeyDictionary()


def local_hub() -> LocalHub:
    """The hub of the running event loop (one per server process in production)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = LocalHub()
    return hub
