"""One symbol's order book kept in Decimal and checked against every checksum Kraken sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from apps.market.checksum import book_checksum


class ChecksumMismatch(Exception):
    """The local book no longer matches the exchange's: drop it and resubscribe."""

    def __init__(self, symbol: str, expected: int, computed: int) -> None:
        super().__init__(f"{symbol}: checksum {computed} != {expected}")
        self.symbol = symbol
        self.expected = expected
        self.computed = computed


class OrderBook:
    """Levels as `price -> qty` per side, truncated to the subscribed depth after every message.

    Kraken: "After each update, truncate your book to the subscribed depth - you will not receive
    qty 0 for levels that fall out of scope."
    """

    def __init__(self, symbol: str, *, depth: int, price_decimals: int, qty_decimals: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self.bids: list[tuple[Decimal, Decimal]] = []  # highest first
        self.asks: list[tuple[Decimal, Decimal]] = []  # lowest first
        self.ready = False

    def apply(self, data: Mapping[str, Any], *, snapshot: bool) -> None:
        """Apply one `data` entry of a book frame; raises ChecksumMismatch if the book drifted."""
        if snapshot:
            self._bids.clear()
            self._asks.clear()
        self._merge(self._bids, data.get("bids", ()))
        self._merge(self._asks, data.get("asks", ()))
        self.bids = sorted(self._bids.items(), reverse=True)[: self.depth]
        self.asks = sorted(self._asks.items())[: self.depth]
        # Levels pushed out of the subscribed depth are forgotten, as the exchange forgets them.
        if len(self._bids) > self.depth:
            self._bids = dict(self.bids)
        if len(self._asks) > self.depth:
            self._asks = dict(self.asks)
        expected = data.get("checksum")
        if expected is not None:
            computed = self.checksum()
            if computed != int(expected):
                self.ready = False
                raise ChecksumMismatch(self.symbol, int(expected), computed)
        if snapshot:
            self.ready = True

    @staticmethod
    def _merge(side: dict[Decimal, Decimal], levels: Sequence[Mapping[str, Any]]) -> None:
        for level in levels:
            price = Decimal(level["price"])
            qty = Decimal(level["qty"])
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = qty

    def checksum(self) -> int:
        return book_checksum(
            self.asks,
            self.bids,
            price_decimals=self.price_decimals,
            qty_decimals=self.qty_decimals,
        )

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0][0] if self.asks else None
