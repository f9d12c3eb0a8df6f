"""Live market fragments to signed-in members, each socket with a bounded, latest-wins buffer.

Every batch carries pre-rendered HTML parts `[(element_id, html), ...]`; the consumer never
renders. Public market groups arrive through the process's LocalHub (one channel-layer
subscription per process, see apps.market.hub); private groups through the channel layer.
Incoming parts replace any unsent part with the same element id (latest wins), and a sender
task per socket drains the buffer in one frame, so a slow client only delays itself: nothing
upstream ever waits on its network. A client whose buffer grows past MAX_PENDING parts, or
whose last send has been stuck for MAX_SEND_STALL seconds, is closed with 1013 ("try again
later"), which htmx's ws extension answers by reconnecting.

Private events (orders, balances) sent to the user's group (joined by MemberConsumer) use the
same `fragments` message type and slot straight in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

from apps.core.groups import symbol_group
from apps.market.hub import local_hub
from apps.market.store import OVERVIEW_CHANNEL, PAIRS_KEY, fragments_key, loads, slug_symbol
from apps.orgs.consumers import MemberConsumer

MAX_PENDING = 200
MAX_SEND_STALL = 10.0
CLOSE_TRY_AGAIN = 1013
PAIR_ELEMENTS = ("stats", "ladder", "trades", "candle")


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis[bytes]] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> Redis[bytes]:
    """One Redis client (and connection pool) per event loop: a pool cannot outlive its loop."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A bounded, blocking pool: a thousand sockets connecting at once queue for a few
        # connections instead of each opening its own (which timed out under load).
        pool: BlockingConnectionPool[Any] = BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=32, timeout=20
        )
        client = _clients[loop] = Redis(connection_pool=pool)
    return client


class MarketConsumer(MemberConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._send_started: float | None = None
        self._closing = False
        self.market_groups: list[str] = []

    async def joined(self) -> None:
        slug = self.scope["url_route"]["kwargs"].get("symbol")
        pairs = await self._pairs()
        if slug:
            symbol = slug_symbol(slug.upper())
            if symbol not in pairs:
                await self.close(code=4404)
                return
            self.market_groups = [symbol_group(symbol)]
            wanted = {symbol: [f"{name}-{slug.upper()}" for name in PAIR_ELEMENTS]}
        else:
            self.market_groups = [OVERVIEW_CHANNEL]
            wanted = {s: [f"tile-{s.replace('/', '-')}"] for s in pairs}
        self._sender = asyncio.create_task(self._send_loop())
        hub = local_hub()
        for group in self.market_groups:
            await hub.join(group, self)
        await self._send_snapshot(wanted)

    async def _pairs(self) -> list[str]:
        raw = await _redis().get(PAIRS_KEY)
        return [p["symbol"] for p in loads(raw)] if raw else []

    async def _send_snapshot(self, wanted: dict[str, list[str]]) -> None:
        """The latest pre-rendered fragments, so the page is current before the next tick."""
        pipe = _redis().pipeline(transaction=False)
        for symbol, elements in wanted.items():
            pipe.hmget(fragments_key(symbol), elements)
        results = await pipe.execute()
        for elements, values in zip(wanted.values(), results, strict=True):
            for element, html in zip(elements, values, strict=True):
                if html is not None:
                    # A live part that arrived meanwhile is newer than the stored one.
                    self._pending.setdefault(element, html.decode())
        self._wake.set()

    async def fragments(self, event: dict[str, Any]) -> None:
        """Channel-layer handler (private groups): the same buffer as the hub's batches."""
        self.enqueue(event["parts"])

    def enqueue(self, parts: list[Any]) -> None:
        """Queue pre-rendered parts, newest per element id; never waits on the network."""
        if self._closing:
            return
        stalled = self._send_started is not None and (
            time.monotonic() - self._send_started > MAX_SEND_STALL
        )
        pending = self._pending
        for element, html in parts:
            pending.pop(element, None)
            pending[element] = html
        if stalled or len(pending) > MAX_PENDING:
            # Too far behind: drop the socket; the browser reconnects and gets a fresh snapshot.
            self._closing = True
            pending.clear()
            task = asyncio.create_task(self.close(code=CLOSE_TRY_AGAIN))
            self._closer = task  # keep a reference until it has run
            return
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            frame = "".join(self._pending.values())
            self._pending.clear()
            self._send_started = time.monotonic()
            try:
                await self.send(text_data=frame)
            except Exception:
                return  # the socket is gone; disconnect() tidies up
            self._send_started = None

    async def disconnect(self, code: int) -> None:
        sender = getattr(self, "_sender", None)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        hub = local_hub()
        for group in self.market_groups:
            hub.leave(group, self)
        await super().disconnect(code)
