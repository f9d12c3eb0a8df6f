"""Render each fragment once per (coalesced) update, store it, and send it to one group.

Per symbol: the pair page's fragments go to `symbol_group(symbol)`; the overview's tiles of every
changed symbol go, batched, to the overview group. Both are coalesced to at most `interval`
apart, so a screen never receives more than four updates a second per group, whatever the
exchange's rate, and the newest value always follows (trailing flush).
"""

from __future__ import annotations

import time
from typing import Any

from django.template.loader import render_to_string
from redis.asyncio import Redis

from apps.core.groups import symbol_group
from apps.market import presenters
from apps.market.feeder.coalesce import Coalescer
from apps.market.feeder.state import SymbolState
from apps.market.store import (
    HEALTH_KEY,
    OVERVIEW_CHANNEL,
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


def render_symbol_parts(state: dict[str, Any]) -> Parts:
    slug = state["slug"]
    return [
        (
            f"stats-{slug}",
            render_to_string(
                "market/pair.html#stats", {"stats": presenters.stats(state), "oob": True}
            ),
        ),
        (
            f"ladder-{slug}",
            render_to_string(
                "market/pair.html#ladder", {"ladder": presenters.ladder(state), "oob": True}
            ),
        ),
        (
            f"trades-{slug}",
            render_to_string(
                "market/pair.html#trades", {"trades": presenters.trades(state), "oob": True}
            ),
        ),
        (
            f"candle-{slug}",
            render_to_string(
                "market/pair.html#candle", {"candle": presenters.last_candle(state), "oob": True}
            ),
        ),
    ]


def render_tile(state: dict[str, Any], previous_last: Any) -> tuple[str, str]:
    context = {"tile": presenters.tile(state, previous_last), "oob": True}
    return f"tile-{state['slug']}", render_to_string("market/overview.html#tile", context)


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

    def changed(self, symbol: str) -> None:
        self._overview_dirty.add(symbol)
        self.coalescer.mark(symbol)
        self.coalescer.mark(OVERVIEW)

    async def _flush(self, key: str) -> None:
        if key == OVERVIEW:
            await self._flush_overview()
        else:
            await self._flush_symbol(key)
        self.flushes += 1

    def _state(self, symbol: str) -> dict[str, Any]:
        state = self.states[symbol].as_dict()
        state["candles"] = state["candles"][-SPARK_CANDLES:]
        return state

    async def _flush_symbol(self, symbol: str) -> None:
        st = self.states[symbol]
        state = self._state(symbol)
        parts = render_symbol_parts(state)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(state_key(symbol), dumps(state))
        pipe.hset(fragments_key(symbol), mapping=dict(parts))
        pipe.hset(HEALTH_KEY, symbol, repr(st.received_at or time.time()))
        # The full history is rewritten only when a candle opens (or the set changes), not per tick.
        mark = (len(st.candles), max(st.candles) if st.candles else 0)
        if self._candle_marks.get(symbol) != mark:
            self._candle_marks[symbol] = mark
            pipe.set(candles_key(symbol), dumps([st.candles[k] for k in sorted(st.candles)]))
        await pipe.execute()
        await self.layer.group_send(symbol_group(symbol), {"type": FRAGMENTS, "parts": parts})

    async def _flush_overview(self) -> None:
        dirty, self._overview_dirty = self._overview_dirty, set()
        parts: Parts = []
        pipe = self.redis.pipeline(transaction=False)
        for symbol in sorted(dirty):
            st = self.states[symbol]
            element, html = render_tile(self._state(symbol), st.previous_last)
            st.previous_last = st.ticker.get("last", st.previous_last)
            parts.append((element, html))
            pipe.hset(fragments_key(symbol), element, html)
        if not parts:
            return
        await pipe.execute()
        await self.layer.group_send(OVERVIEW_CHANNEL, {"type": FRAGMENTS, "parts": parts})

    async def drain(self) -> None:
        await self.coalescer.drain()
