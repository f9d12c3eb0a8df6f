"""The feeder's in-memory picture of one symbol, updated from WS v2 frames (Decimal throughout)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from apps.market.feeder.book import OrderBook
from apps.market.store import symbol_slug

BOOK_DEPTH = 25
TRADES_KEPT = 30
CANDLES_KEPT = 720  # twelve hours of one-minute candles
TICKER_FIELDS = (
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "last",
    "volume",
    "vwap",
    "low",
    "high",
    "change",
    "change_pct",
)


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def candle_from_row(row: list[Any]) -> dict[str, Any]:
    """A REST OHLC row `[time, open, high, low, close, vwap, volume, count]` as a candle."""
    return {
        "time": int(row[0]),
        "open": Decimal(row[1]),
        "high": Decimal(row[2]),
        "low": Decimal(row[3]),
        "close": Decimal(row[4]),
        "volume": Decimal(row[6]),
    }


class SymbolState:
    def __init__(
        self,
        symbol: str,
        *,
        price_decimals: int,
        qty_decimals: int,
        described: Mapping[str, Any] | None = None,
    ) -> None:
        self.symbol = symbol
        # The pair's assets and their decimals (see PairInfo.described), carried in the state
        # so every fragment formats amounts from the state alone.
        self.described = dict(described or {})
        self.slug = symbol_slug(symbol)
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.book = OrderBook(
            symbol, depth=BOOK_DEPTH, price_decimals=price_decimals, qty_decimals=qty_decimals
        )
        self.ticker: dict[str, Decimal] = {}
        self.trades: deque[dict[str, Any]] = deque(maxlen=TRADES_KEPT)
        self.candles: dict[int, dict[str, Any]] = {}
        self.received_at = 0.0  # wall time of the newest message, carried to the browser
        self.previous_last: Decimal | None = None  # the last price the overview showed
        # Which fragments the messages since the last flush changed, and when each part's
        # newest message arrived: a fragment is re-rendered only when its data changed, and
        # its `data-t` is the receive time of the newest message it shows.
        self.dirty: set[str] = set()
        self.stamps: dict[str, float] = {}
        # Kraken's trading status of the pair (`instrument` channel); None until it arrives.
        self.status: str | None = None

    def touch(self, parts: tuple[str, ...], received_at: float) -> None:
        self.received_at = received_at
        self.dirty.update(parts)
        for part in parts:
            self.stamps[part] = received_at

    def apply_ticker(self, entry: Mapping[str, Any], received_at: float) -> None:
        for name in TICKER_FIELDS:
            if entry.get(name) is not None:
                self.ticker[name] = Decimal(entry[name])
        self.touch(("stats", "tile"), received_at)

    def set_status(self, status: str, received_at: float) -> None:
        self.status = status
        self.touch(("status", "tile"), received_at)

    def apply_trade(self, entry: Mapping[str, Any], received_at: float) -> None:
        self.trades.appendleft(
            {
                "price": Decimal(entry["price"]),
                "qty": Decimal(entry["qty"]),
                "side": entry.get("side", ""),
                "time": entry.get("timestamp", ""),
            }
        )
        self.touch(("trades",), received_at)

    def apply_ohlc(self, entry: Mapping[str, Any], received_at: float) -> None:
        begin = _epoch(entry["interval_begin"])
        self.candles[begin] = {
            "time": begin,
            "open": Decimal(entry["open"]),
            "high": Decimal(entry["high"]),
            "low": Decimal(entry["low"]),
            "close": Decimal(entry["close"]),
            "volume": Decimal(entry["volume"]),
        }
        if len(self.candles) > CANDLES_KEPT:
            for stale in sorted(self.candles)[: len(self.candles) - CANDLES_KEPT]:
                del self.candles[stale]
        self.touch(("candle", "tile"), received_at)

    def seed_candles(self, rows: list[list[Any]]) -> None:
        """History from REST OHLC: `[time, open, high, low, close, vwap, volume, count]`."""
        for row in rows[-CANDLES_KEPT:]:
            self.candles.setdefault(int(row[0]), candle_from_row(row))

    def as_dict(self, *, candles: int = CANDLES_KEPT) -> dict[str, Any]:
        """The stored shape (see apps.market.store); pages and fragments render from it.

        `candles` limits the history included (the newest ones).
        """
        recent = sorted(self.candles)[-candles:]
        return {
            **self.described,
            "symbol": self.symbol,
            "slug": self.slug,
            "price_decimals": self.price_decimals,
            "qty_decimals": self.qty_decimals,
            "ticker": dict(self.ticker),
            "bids": [[p, q] for p, q in self.book.bids],
            "asks": [[p, q] for p, q in self.book.asks],
            "book_ready": self.book.ready,
            "trades": list(self.trades),
            "candles": [self.candles[k] for k in recent],
            "received_at": self.received_at,
            "status": self.status,
            "stamps": dict(self.stamps),
        }
