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
import json
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

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
# The overview renders each pair twice, as a tile and as a table row; a socket receives only
# the view its page shows (`?view=` when it connects, then `{"view": ...}` messages when the
# person switches), so the table costs the many tile viewers nothing.
OVERVIEW_VIEWS = {"tiles": "tile", "table": "row"}
DEFAULT_VIEW = "tiles"
MAX_CLIENT_MESSAGE = 200


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
        self.pairs: list[str] = []
        self.view = ""  # overview only: "tiles" or "table"
        self._skip = "\0"  # element-id prefix this socket does not want (none by default)

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
            self.pairs = pairs
            query = parse_qs(self.scope.get("query_string", b"").decode())
            self._choose_view((query.get("view") or [DEFAULT_VIEW])[0])
            wanted = self._overview_elements()
        self.start_sending()
        hub = local_hub()
        for group in self.market_groups:
            await hub.join(group, self)
        await self._send_snapshot(wanted)

    def _choose_view(self, view: str) -> None:
        self.view = view if view in OVERVIEW_VIEWS else DEFAULT_VIEW
        other = [prefix for name, prefix in OVERVIEW_VIEWS.items() if name != self.view]
        self._skip = other[0] + "-"

    def _overview_elements(self) -> dict[str, list[str]]:
        prefix = OVERVIEW_VIEWS[self.view]
        return {s: [f"{prefix}-{s.replace('/', '-')}"] for s in self.pairs}

    def enqueue(self, parts: list[Any]) -> None:
        """The kernel's latest-wins buffer, without the parts of the overview view this page
        does not show."""
        if self.view:
            skip = self._skip
            parts = [part for part in parts if not part[0].startswith(skip)]
        super().enqueue(parts)

    def frames(self, parts: Iterable[str]) -> list[str]:
        """The pending parts as WebSocket frames: table rows in a frame of their own.

        The browser parses a frame as one piece of HTML, and HTML keeps a `<tr>` only among
        table rows: after a tile's `<a>` its tags would be dropped and the row lost. So rows
        travel together, everything else together (at most two frames per flush).
        """
        rows: list[str] = []
        other: list[str] = []
        for html in parts:
            (rows if html.startswith("<tr") else other).append(html)
        return [frame for frame in ("".join(other), "".join(rows)) if frame]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The only thing a page may say: which overview view it shows now. Anything else, or
        anything on a pair page, is ignored."""
        if not self.view or not text_data or len(text_data) > MAX_CLIENT_MESSAGE:
            return
        try:
            view = json.loads(text_data).get("view")
        except (ValueError, AttributeError):
            return
        if view in OVERVIEW_VIEWS and view != self.view:
            self._choose_view(view)
            for element in [e for e in self._pending if e.startswith(self._skip)]:
                del self._pending[element]  # queued for the view no longer shown
            # The newly shown view's current fragments, so it is up to date at once.
            await self._send_snapshot(self._overview_elements())

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
