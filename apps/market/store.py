"""Where the feeder leaves market data in Redis, and how it is spelled.

The feeder is the only writer. Pages read a symbol's latest state (rendered server-side from it)
and sockets read the pre-rendered fragments, so a page that connects gets a snapshot at once.
All amounts are stored as decimal strings, never floats.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

PREFIX = "market:"
LEASE_KEY = PREFIX + "feeder:lease"
FEEDER_KEY = PREFIX + "feeder"  # hash: owner, state, connected_since, reconnects, updated_at
PAIRS_KEY = PREFIX + "pairs"  # JSON list of pair descriptions, in display order
HEALTH_KEY = PREFIX + "health"  # hash: symbol -> wall time (s) of its last message
OVERVIEW_CHANNEL = "market.overview"  # channel-layer group of the markets overview
# Kraken's own word on trading: the system status (pushed on connect and on change) and each
# pair's status (the `instrument` channel), as the feeder last received them.
SYSTEM_STATUS_KEY = PREFIX + "system"  # hash: status, since (wall time it was first seen)
PAIR_STATUS_KEY = PREFIX + "pair-status"  # hash: symbol -> JSON {"status", "since"}
# Pre-rendered fragments that belong to no pair (the system status banner).
EXCHANGE_FRAGMENTS_KEY = PREFIX + "html:exchange"


def state_key(symbol: str) -> str:
    return f"{PREFIX}state:{symbol}"


def fragments_key(symbol: str) -> str:
    """Hash of element id -> the latest pre-rendered HTML of that element."""
    return f"{PREFIX}html:{symbol}"


def symbol_slug(symbol: str) -> str:
    """`BTC/USD` -> `BTC-USD`, the spelling used in URLs and element ids."""
    return symbol.replace("/", "-")


def slug_symbol(slug: str) -> str:
    return slug.replace("-", "/")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def candles_key(symbol: str, interval: int = 1) -> str:
    """JSON list of candles of `interval` minutes (history for the chart). One-minute candles
    are rewritten when a candle opens; longer ones are refreshed from Kraken's OHLC now and
    then (the pages build their recent buckets from the one-minute candles)."""
    return f"{PREFIX}candles:{symbol}" + (f":{interval}" if interval != 1 else "")
