"""Every number on the market pages goes through apps.core.amounts, at the pair's decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.market import presenters
from apps.market.store import dumps, loads


def _state(symbol: str, **pair: Any) -> dict[str, Any]:
    """A state as the feeder stores it (decimal strings after a round trip through Redis)."""
    state = {
        "symbol": symbol,
        "slug": symbol.replace("/", "-"),
        "ticker": {
            "bid": Decimal("1.00005"),
            "ask": Decimal("1.00015"),
            "last": Decimal("1.0001"),
            "volume": Decimal("1234567.12345678"),
            "vwap": Decimal("1.00012"),
            "high": Decimal("1.0004"),
            "low": Decimal("0.9998"),
            "change": Decimal("-0.0002"),
            "change_pct": Decimal("-0.02"),
        },
        "bids": [[Decimal("1.0000"), Decimal("2500.5")]],
        "asks": [[Decimal("1.0002"), Decimal("1500.123456")]],
        "trades": [
            {
                "price": Decimal("1.0001"),
                "qty": Decimal("1500.5"),
                "side": "buy",
                "time": "2026-12-01T14:00:00.000000Z",
            }
        ],
        "candles": [],
        **pair,
    }
    loaded: dict[str, Any] = loads(dumps(state))
    return loaded


EUR_USD = {
    "price_decimals": 5,
    "qty_decimals": 8,
    "base": "EUR",
    "quote": "USD",
    "base_decimals": 4,
    "base_display_decimals": 2,
    "quote_display_decimals": 2,
}
USDT_USD = {
    "price_decimals": 4,
    "qty_decimals": 8,
    "base": "USDT",
    "quote": "USD",
    "base_decimals": 8,
    "base_display_decimals": 4,
    "quote_display_decimals": 2,
}


def test_prices_show_the_pairs_tick_decimals_with_separators() -> None:
    tile = presenters.tile(_state("USDT/USD", **USDT_USD))
    assert tile["last"] == "1.0001"
    assert tile["high"] == "1.0004"
    assert tile["volume_base"] == "1,234,567.1235 USDT"
    assert tile["volume_quote"] == "1,234,715.27 USD"  # volume * VWAP, rounded only here
    assert tile["spread_bps"] == "1.0"
    assert tile["change_pct"] == "-0.02%"


def test_eur_sizes_are_never_shown_with_eight_decimals() -> None:
    state = _state("EUR/USD", **EUR_USD)
    ladder = presenters.ladder(state)
    assert ladder["asks"][0]["qty"] == "1,500.1235"
    assert ladder["bids"][0]["total"] == "2,500.5000"
    assert presenters.trades(state)["trades"][0]["qty"] == "1,500.5000"
    assert presenters.stats(state)["volume"] == "1,234,567.12 EUR"


def test_the_chart_gets_the_pairs_precision_and_smallest_move() -> None:
    fmt = presenters.chart_format(_state("ADA/USD", price_decimals=6, qty_decimals=8))
    assert fmt == {"precision": 6, "minMove": "0.000001"}
