"""The `book` channel: per-depth views, snapshots, diffs and the CRC32 checksum."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

from apps.sandbox.pairs import PAIRS, Pair, fmt
from apps.sandbox.util import rfc3339

from .connection import (
    BookView,
    Conn,
    Level,
    checksum,
)
from .private_channels import PrivateChannels


class BookChannel(PrivateChannels):
    # ------------------------------------------------------------------ plumbing
    def mark_dirty(self, pair: str) -> None:
        if not self.book_subs[pair]:
            return
        self.dirty.add(pair)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self.flush)
                return
            self._flush_scheduled = False

    def flush(self) -> None:
        self._flush_scheduled = False
        pairs, self.dirty = self.dirty, set()
        for pid in pairs:
            self.publish_book(pid)

    # ------------------------------------------------------------------ book
    def _levels(
        self, pid: str, depth: int
    ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        return (
            dict(self.engine.book_levels(pid, "bid", depth)),
            dict(self.engine.book_levels(pid, "ask", depth)),
        )

    def _book_frame(
        self, pair: Pair, kind: str, bids: list[Level], asks: list[Level], view: BookView
    ) -> str:
        price_places, lot_places = pair.pair_decimals, pair.lot_decimals
        top_a = sorted(view.asks.items())[:10]
        top_b = sorted(view.bids.items(), reverse=True)[:10]
        crc = checksum(
            [(fmt(price, price_places), fmt(qty, lot_places)) for price, qty in top_a],
            [(fmt(price, price_places), fmt(qty, lot_places)) for price, qty in top_b],
        )
        data: dict[str, Any] = {
            "symbol": pair.symbol,
            "bids": [
                {"price": price.quantize(pair.price_q), "qty": qty.quantize(pair.lot_q)}
                for price, qty in bids
            ],
            "asks": [
                {"price": price.quantize(pair.price_q), "qty": qty.quantize(pair.lot_q)}
                for price, qty in asks
            ],
            "checksum": crc,
        }
        if kind == "update":
            data["timestamp"] = rfc3339(self.engine.now())
        return self._frame({"channel": "book", "type": kind, "data": [data]})

    def publish_book(self, pid: str) -> None:
        subs = self.book_subs[pid]
        if not subs:
            return
        pair = PAIRS[pid]
        market = self.engine.markets[pid]
        by_depth: dict[int, list[Conn]] = {}
        for conn, depth in subs.items():
            by_depth.setdefault(depth, []).append(conn)
        for depth, conns in by_depth.items():
            view = self.views.get((pid, depth))
            new_b, new_a = self._levels(pid, depth)
            if view is None:
                self.views[(pid, depth)] = BookView(new_b, new_a)
                continue
            diff: list[list[Level]] = []
            for old, new, synth in (
                (view.bids, new_b, market.bids),
                (view.asks, new_a, market.asks),
            ):
                changes: list[Level] = [
                    (price, qty) for price, qty in new.items() if old.get(price) != qty
                ]
                # Levels pushed out of scope are truncated by the client; only levels
                # that vanished from the book are sent with qty 0.
                changes.extend(
                    (price, Decimal(0))
                    for price in old
                    if price not in new and price not in synth and not self._user_level(pid, price)
                )
                diff.append(changes)
            view.bids, view.asks = new_b, new_a
            if not diff[0] and not diff[1]:
                continue
            bids = sorted(diff[0], key=lambda level: -level[0])
            asks = sorted(diff[1])
            frame = self._book_frame(pair, "update", bids, asks, view)
            self.book_messages += len(conns)
            for conn in conns:
                conn.send(frame)

    def _user_level(self, pid: str, price: Decimal) -> bool:
        for side in ("buy", "sell"):
            for order in self.engine.book_orders[(pid, side)]:
                if order.resting_limit() == price:
                    return True
        return False
