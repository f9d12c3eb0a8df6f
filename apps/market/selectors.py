"""Reads of market data (from the feeder's Redis store) and of watchlists."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.http import Http404

from apps.kraken.naming import pair_symbol
from apps.market.models import MarketPreference, WatchlistItem
from apps.market.store import (
    FEEDER_KEY,
    HEALTH_KEY,
    PAIR_STATUS_KEY,
    PAIRS_KEY,
    SYSTEM_STATUS_KEY,
    candles_key,
    loads,
    slug_symbol,
    state_key,
    symbol_slug,
)

UNKNOWN_PAIR = "No such market."
FEEDER_STALE_AFTER = 5.0


@cache
def _redis() -> redis.Redis[bytes]:
    return redis.Redis.from_url(settings.REDIS_URL)


def market_pairs() -> list[dict[str, Any]]:
    raw = _redis().get(PAIRS_KEY)
    pairs: list[dict[str, Any]] = loads(raw) if raw else []
    return pairs


def market_symbol_from_slug(*, slug: str) -> str:
    """`BTC-USD` -> `BTC/USD` if the feeder knows that pair, else 404."""
    symbol = slug_symbol(slug.upper())
    if symbol not in {p["symbol"] for p in market_pairs()}:
        raise Http404(UNKNOWN_PAIR)
    return symbol


def market_states(*, symbols: list[str]) -> dict[str, dict[str, Any]]:
    if not symbols:
        return {}
    raws = _redis().mget([state_key(s) for s in symbols])
    return {s: loads(raw) for s, raw in zip(symbols, raws, strict=True) if raw}


def _empty_state(pair: dict[str, Any]) -> dict[str, Any]:
    return {
        **pair,  # the symbol, its decimals and its assets' (see PairInfo.described)
        "slug": symbol_slug(pair["symbol"]),
        "ticker": {},
        "bids": [],
        "asks": [],
        "book_ready": False,
        "trades": [],
        "candles": [],
        "received_at": 0,
        "status": None,
    }


def market_state(*, symbol: str) -> dict[str, Any]:
    state = market_states(symbols=[symbol]).get(symbol)
    if state is not None:
        return state
    pair = next(p for p in market_pairs() if p["symbol"] == symbol)
    return _empty_state(pair)


def market_overview_states() -> list[dict[str, Any]]:
    pairs = market_pairs()
    states = market_states(symbols=[p["symbol"] for p in pairs])
    return [states.get(p["symbol"]) or _empty_state(p) for p in pairs]


def market_candles(*, symbol: str, interval: int = 1) -> list[dict[str, Any]]:
    raw = _redis().get(candles_key(symbol, interval))
    candles: list[dict[str, Any]] = loads(raw) if raw else []
    return candles


def _feeder_age(updated_at: bytes | str | None, now: float) -> float | None:
    return now - float(updated_at) if updated_at else None


def market_feeder_ok() -> bool:
    """Whether the feeder reported in the last FEEDER_STALE_AFTER seconds: what every market
    page shows in its badge, without the per-pair ages only the status page needs."""
    age = _feeder_age(_redis().hget(FEEDER_KEY, "updated_at"), time.time())
    return age is not None and age < FEEDER_STALE_AFTER


def market_status() -> dict[str, Any]:
    """The feeder's health and the age of each pair's last message, for the status page."""
    client = _redis()
    feeder = {k.decode(): v.decode() for k, v in client.hgetall(FEEDER_KEY).items()}
    health = {k.decode(): float(v) for k, v in client.hgetall(HEALTH_KEY).items()}
    now = time.time()
    feeder_age = _feeder_age(feeder.get("updated_at"), now)
    feeder_ok = feeder_age is not None and feeder_age < FEEDER_STALE_AFTER
    pairs = []
    for pair in market_pairs():
        seen = health.get(pair["symbol"])
        age = now - seen if seen else None
        pairs.append(
            {
                "symbol": pair["symbol"],
                "age": age,
                "stale": age is None or age > settings.MARKET_STALE_AFTER or not feeder_ok,
            }
        )
    return {
        "state": feeder.get("state", ""),
        "feeder_ok": feeder_ok,
        "feeder_age": feeder_age,
        "reconnects": feeder.get("reconnects"),
        "resyncs": feeder.get("resyncs"),
        "pairs": pairs,
    }


def market_feed() -> dict[str, Any]:
    """The feed's pulse as the feeder last recorded it (see Publisher.heartbeat): when Kraken
    was last heard from and the symbols whose books are being rebuilt."""
    raw = _redis().hmget(FEEDER_KEY, ["heard_at", "down"])
    heard_at, down = (value.decode() if value else "" for value in raw)
    try:
        heard = float(heard_at)
    except ValueError:
        heard = 0.0
    return {"heard_at": heard, "down": down.split()}


def watchlist_symbols(*, user: Any) -> list[str]:
    return list(WatchlistItem.objects.filter(user=user).values_list("symbol", flat=True))


@dataclass(frozen=True)
class ExchangeStatus:
    """Kraken's status (the system's, or one pair's) as the market feeder last received it.

    `status` is Kraken's word (`online`, `maintenance`, `cancel_only`, `post_only`, and for a
    pair also `limit_only`, `reduce_only`, ...), None if the feeder never received one.
    `since`: when the feeder first saw this value. `age_seconds`: how old the portal's
    knowledge is — Kraken pushes every change on the socket, so a status received on the
    feeder's current socket is confirmed by each later word from Kraken (data or heartbeat);
    one from an earlier socket only by its own arrival.
    """

    status: str | None
    since: datetime | None
    age_seconds: float | None

    @property
    def stale(self) -> bool:
        """Too old to act on (the market pages' own threshold, MARKET_STALE_AFTER)."""
        return self.age_seconds is None or self.age_seconds > settings.MARKET_STALE_AFTER

    @property
    def online(self) -> bool:
        """Known, fresh and `online`: the only state in which to send an order unhindered."""
        return self.status == "online" and not self.stale


UNKNOWN_STATUS = ExchangeStatus(status=None, since=None, age_seconds=None)


def _when(value: float | str | bytes | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def confirmed_at(*, received_at: float, feeder: dict[str, float] | None = None) -> float:
    """When something the feeder received at `received_at` was last confirmed by Kraken: the
    feed's last word if it arrived on the socket that is (or was last) open, else on arrival."""
    pulse = feeder if feeder is not None else feeder_pulse()
    if received_at and received_at >= pulse["connected_at"]:
        return max(received_at, pulse["heard_at"])
    return received_at


def feeder_pulse() -> dict[str, float]:
    """The active feeder's `heard_at` and `connected_at` (wall times; 0 if unknown)."""
    raw = _redis().hmget(FEEDER_KEY, ["heard_at", "connected_at"])
    return {"heard_at": _when(raw[0]), "connected_at": _when(raw[1])}


def _status(status: str | None, since: float, received_at: float) -> ExchangeStatus:
    if not status:
        return UNKNOWN_STATUS
    now = time.time()
    confirmed = confirmed_at(received_at=received_at)
    return ExchangeStatus(
        status=status,
        since=datetime.fromtimestamp(since, tz=UTC) if since else None,
        age_seconds=max(0.0, now - confirmed) if confirmed else None,
    )


def system_status() -> ExchangeStatus:
    """Kraken's system status (`online`, `maintenance`, `cancel_only`, `post_only`)."""
    raw = _redis().hmget(SYSTEM_STATUS_KEY, ["status", "since", "received_at"])
    status = raw[0].decode() if raw[0] else None
    return _status(status, _when(raw[1]), _when(raw[2]))


def pair_status(symbol: str) -> ExchangeStatus:
    """Kraken's status of one pair (any Kraken spelling: `BTC/USD`, `XBTUSD`, `XXBTZUSD`), from
    the `instrument` channel: `online`, `limit_only`, `reduce_only`, `post_only`, `cancel_only`,
    `maintenance`, ... An unknown pair has an unknown (None) status."""
    try:
        symbol = pair_symbol(symbol)
    except ValueError:
        return UNKNOWN_STATUS
    raw = _redis().hget(PAIR_STATUS_KEY, symbol)
    if not raw:
        return UNKNOWN_STATUS
    entry = loads(raw)
    return _status(str(entry["status"]), _when(entry.get("since")), _when(entry.get("received_at")))


def market_layout(*, user: Any) -> str:
    """`tiles` or `table`: how `user` last chose to see the markets overview."""
    layout = MarketPreference.objects.filter(user=user).values_list("layout", flat=True).first()
    return layout or MarketPreference.Layout.TILES
