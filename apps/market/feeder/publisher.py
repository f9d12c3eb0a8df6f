"""Render each fragment once per (coalesced) update, store it, and send it to one group.

Per symbol: the pair page's fragments go to `symbol_group(symbol)`; the overview's tiles of every
changed symbol go, batched, to the overview group. Both are coalesced to at most `interval`
apart, so a screen never receives more than four updates a second per group, whatever the
exchange's rate, and the newest value always follows (trailing flush).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from django.template.loader import render_to_string
from redis.asyncio import Redis

from apps.core.groups import symbol_group
from apps.market import presenters
from apps.market.feeder.coalesce import Coalescer
from apps.market.feeder.state import SymbolState
from apps.market.store import (
    EXCHANGE_FRAGMENTS_KEY,
    HEALTH_KEY,
    OVERVIEW_CHANNEL,
    PAIR_STATUS_KEY,
    SYSTEM_STATUS_KEY,
    candles_key,
    dumps,
    fragments_key,
    state_key,
)

OVERVIEW = "*overview*"
SPARK_CANDLES = presenters.SPARK_POINTS
# The message type consumers handle (`fragments` -> MarketConsumer.fragments); private events
# (orders, balances) use the same shape when sent to a user's group.
FRAGMENTS = "fragments"

type Parts = list[tuple[str, str]]
# Template indentation is most of a fragment's bytes; runs of whitespace mean the same as one
# space in this HTML (no <pre>), and every byte saved is saved once per socket per frame.
_WHITESPACE = re.compile(r"\s{2,}")


def _render(template: str, context: dict[str, Any]) -> str:
    return _WHITESPACE.sub(" ", render_to_string(template, context)).strip()


_PART_RENDERERS: dict[str, tuple[str, Any]] = {
    "stats": ("market/pair.html#stats", presenters.stats),
    "ladder": ("market/pair.html#ladder", presenters.ladder),
    "trades": ("market/pair.html#trades", presenters.trades),
    "candle": ("market/pair.html#candle", presenters.last_candle),
    # Kraken's status of the pair (limit_only, reduce_only, ...), beside the pair page's title.
    "status": ("market/_pair_status.html", presenters.pair_status),
}
SYMBOL_PARTS = tuple(_PART_RENDERERS)


def render_symbol_parts(state: dict[str, Any], parts: Iterable[str] = SYMBOL_PARTS) -> Parts:
    """The pair page's fragments named in `parts`, each rendered once for every viewer."""
    slug = state["slug"]
    rendered: Parts = []
    for part in parts:
        template, present = _PART_RENDERERS[part]
        html = _render(template, {part: present(state), "oob": True})
        rendered.append((f"{part}-{slug}", html))
    return rendered


FEED_ELEMENT = "market-feed"


def render_feed(*, heard_at: float, down: Iterable[str]) -> str:
    context = {"feed": presenters.feed(heard_at=heard_at, down=down), "oob": True}
    return _render("market/_feed.html", context)


def render_tile(state: dict[str, Any], previous_last: Any) -> Parts:
    """The overview's two views of one pair, its tile and its table row, from one present."""
    context = {"tile": presenters.tile(state, previous_last), "oob": True}
    slug = state["slug"]
    return [
        (f"tile-{slug}", _render("market/overview.html#tile", context)),
        (f"row-{slug}", _render("market/overview.html#row", context)),
    ]


EXCHANGE_ELEMENT = "exchange-status"


def render_exchange_status(status: str | None) -> str:
    context = {"exchange": presenters.exchange_status(status), "oob": True}
    return _render("market/_exchange_status.html", context)


class Publisher:
    def __init__(
        self,
        *,
        redis: Redis[bytes],
        layer: Any,
        states: dict[str, SymbolState],
        interval: float = 0.25,
    ) -> None:
        self.redis = redis
        self.layer = layer
        self.states = states
        self.coalescer = Coalescer(self._flush, interval=interval)
        self._overview_dirty: set[str] = set()
        self._candle_marks: dict[str, tuple[int, int]] = {}
        self.flushes = 0

    def changed(self, symbol: str, *, overview: bool = True) -> None:
        """`symbol`'s state changed; `overview` if its tile (ticker or candle) changed too."""
        self.coalescer.mark(symbol)
        if overview:
            self._overview_dirty.add(symbol)
            self.coalescer.mark(OVERVIEW)

    async def heartbeat(self, *, heard_at: float, down: list[str]) -> None:
        """Once a second, to every market group: when Kraken was last heard from and which
        books are being rebuilt. Pages judge staleness by this, not by how long ago a pair
        last changed, so a quiet market is not mistaken for a dead feed."""
        parts = [(FEED_ELEMENT, render_feed(heard_at=heard_at, down=down))]
        message = {"type": FRAGMENTS, "parts": parts}
        await self.layer.group_send(OVERVIEW_CHANNEL, message)
        for symbol in list(self.states):  # pairs may be added while this awaits
            await self.layer.group_send(symbol_group(symbol), message)

    async def system_status(self, *, status: str, since: float, received_at: float) -> None:
        """Record Kraken's system status (every status frame confirms it)."""
        await self.redis.hset(
            SYSTEM_STATUS_KEY,
            mapping={"status": status, "since": repr(since), "received_at": repr(received_at)},
        )

    async def system_status_changed(self, *, status: str) -> None:
        """Once per change: the banner, stored for sockets that connect later and sent to every
        market group (the overview and each pair's page)."""
        html = render_exchange_status(status)
        await self.redis.hset(EXCHANGE_FRAGMENTS_KEY, EXCHANGE_ELEMENT, html)
        message = {"type": FRAGMENTS, "parts": [(EXCHANGE_ELEMENT, html)]}
        await self.layer.group_send(OVERVIEW_CHANNEL, message)
        for symbol in list(self.states):
            await self.layer.group_send(symbol_group(symbol), message)

    async def pair_statuses(
        self, *, statuses: dict[str, str], since: dict[str, float], received_at: float
    ) -> None:
        """Record each pair's status as `instrument` last gave it (every pair Kraken lists,
        not only the ones fed to pages: a ticket may trade any). Pages of a changed pair get
        it through the pair's own fragments (see SymbolState.set_status)."""
        await self.redis.hset(
            PAIR_STATUS_KEY,
            mapping={
                symbol: dumps(
                    {
                        "status": status,
                        "since": since.get(symbol, received_at),
                        "received_at": received_at,
                    }
                )
                for symbol, status in statuses.items()
            },
        )

    async def _flush(self, key: str) -> None:
        if key == OVERVIEW:
            await self._flush_overview()
        else:
            await self._flush_symbol(key)
        self.flushes += 1

    def _state(self, symbol: str) -> dict[str, Any]:
        return self.states[symbol].as_dict(candles=SPARK_CANDLES)

    async def _flush_symbol(self, symbol: str) -> None:
        st = self.states[symbol]
        state = self._state(symbol)
        changed = [part for part in SYMBOL_PARTS if part in st.dirty]
        st.dirty.difference_update(SYMBOL_PARTS)
        parts = render_symbol_parts(state, changed)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(state_key(symbol), dumps(state))
        if parts:
            pipe.hset(fragments_key(symbol), mapping=dict(parts))
        pipe.hset(HEALTH_KEY, symbol, repr(st.received_at or time.time()))
        # The full history is rewritten only when a candle opens (or the set changes), not per tick.
        mark = (len(st.candles), max(st.candles) if st.candles else 0)
        if self._candle_marks.get(symbol) != mark:
            self._candle_marks[symbol] = mark
            pipe.set(candles_key(symbol), dumps([st.candles[k] for k in sorted(st.candles)]))
        await pipe.execute()
        if parts:
            await self.layer.group_send(symbol_group(symbol), {"type": FRAGMENTS, "parts": parts})

    async def _flush_overview(self) -> None:
        dirty, self._overview_dirty = self._overview_dirty, set()
        parts: Parts = []
        pipe = self.redis.pipeline(transaction=False)
        for symbol in sorted(dirty):
            st = self.states[symbol]
            st.dirty.discard("tile")
            rendered = render_tile(self._state(symbol), st.previous_last)
            st.previous_last = st.ticker.get("last", st.previous_last)
            parts.extend(rendered)
            pipe.hset(fragments_key(symbol), mapping=dict(rendered))
        if not parts:
            return
        await pipe.execute()
        await self.layer.group_send(OVERVIEW_CHANNEL, {"type": FRAGMENTS, "parts": parts})

    async def drain(self) -> None:
        await self.coalescer.drain()
