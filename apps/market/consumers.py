"""Live market fragments to signed-in members, through the kernel's latest-wins buffer
(apps.core.consumers.LatestWinsConsumer: a slow client only delays itself, one too far behind
is closed with 1013 and reconnects).

Public market groups arrive through the process's LocalHub (one channel-layer subscription per
process, see apps.market.hub); private groups through the channel layer. Private events
(orders, balances) sent to the member's per-organization group (joined by MemberConsumer,
apps.core.realtime.member_event_on_commit) use the same `fragments` message type and slot
straight in; the cross-organization user group never carries data.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

from apps.core.consumers import LatestWinsConsumer
from apps.core.groups import symbol_group
from apps.market.hub import local_hub
from apps.market.store import (
    EXCHANGE_FRAGMENTS_KEY,
    OVERVIEW_CHANNEL,
    PAIRS_KEY,
    fragments_key,
    loads,
    slug_symbol,
)
from apps.orgs.consumers import MemberConsumer

PAIR_ELEMENTS = ("stats", "ladder", "trades", "candle", "status")
# Every market page shows Kraken's system status (apps.market.feeder.publisher).
EXCHANGE_ELEMENTS = ["exchange-status"]


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


class MarketConsumer(MemberConsumer, LatestWinsConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
        self.start_sending()
        hub = local_hub()
        for group in self.market_groups:
            await hub.join(group, self)
        await self._send_snapshot(wanted)

    async def _pairs(self) -> list[str]:
        raw = await _redis().get(PAIRS_KEY)
        return [p["symbol"] for p in loads(raw)] if raw else []

    async def _send_snapshot(self, wanted: dict[str, list[str]]) -> None:
        """The latest pre-rendered fragments, so the page is current before the next tick."""
        keys = [fragments_key(symbol) for symbol in wanted] + [EXCHANGE_FRAGMENTS_KEY]
        lists = [*wanted.values(), EXCHANGE_ELEMENTS]
        pipe = _redis().pipeline(transaction=False)
        for key, elements in zip(keys, lists, strict=True):
            pipe.hmget(key, elements)
        results = await pipe.execute()
        self.enqueue_snapshot(
            (element, html.decode())
            for elements, values in zip(lists, results, strict=True)
            for element, html in zip(elements, values, strict=True)
            if html is not None
        )

    async def disconnect(self, code: int) -> None:
        hub = local_hub()
        for group in self.market_groups:
            hub.leave(group, self)
        await super().disconnect(code)
