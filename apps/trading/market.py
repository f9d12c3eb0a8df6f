"""What the desk reads of the market: the pair's rules (Kraken reference data), its status and
the system's (the market feeder), the last trade and the book (the feeder's state), and the
account's fee tier (TradeVolume through apps.exchange, cached briefly).

Everything here only reads; the rules that use it are in rules.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import redis
from django.conf import settings

from apps.exchange.services import private_read
from apps.kraken.models import AssetPair
from apps.kraken.selectors import asset_pair_get
from apps.market import selectors as market
from apps.market.selectors import ExchangeStatus
from apps.vault.models import Credential

logger = logging.getLogger(__name__)

FEE_CACHE_SECONDS = 300


@cache
def _redis() -> redis.Redis[bytes]:
    return redis.Redis.from_url(settings.REDIS_URL)


def dec(value: Any) -> Decimal | None:
    try:
        result = Decimal(str(value)) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None
    return result if result is not None and result.is_finite() else None


def pair_rules(symbol: str) -> AssetPair | None:
    """Kraken's rules for the pair (ordermin, costmin, tick size, lot decimals), or None."""
    if not symbol:
        return None
    try:
        return asset_pair_get(name=symbol)
    except (AssetPair.DoesNotExist, ValueError):
        return None


@dataclass(frozen=True)
class Book:
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    last: Decimal | None
    ready: bool

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0][0] if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if self.best_bid is not None and self.best_ask is not None:
            return (self.best_bid + self.best_ask) / 2
        return self.last


EMPTY_BOOK = Book(bids=[], asks=[], last=None, ready=False)


def _levels(raw: Any) -> list[tuple[Decimal, Decimal]]:
    out = []
    for level in raw or []:
        try:
            price, qty = dec(level[0]), dec(level[1])
        except (IndexError, TypeError):
            continue
        if price is not None and qty is not None and price > 0 and qty > 0:
            out.append((price, qty))
    return out


def book(symbol: str) -> Book:
    """The feeder's current book and last trade of `symbol` (empty when it publishes none)."""
    try:
        state = market.market_states(symbols=[symbol]).get(symbol)
    except redis.RedisError:
        state = None
    if not state:
        return EMPTY_BOOK
    ticker = state.get("ticker") or {}
    return Book(
        bids=_levels(state.get("bids")),
        asks=_levels(state.get("asks")),
        last=dec(ticker.get("last")),
        ready=bool(state.get("book_ready")),
    )


def system_status() -> ExchangeStatus:
    try:
        return market.system_status()
    except redis.RedisError:
        return market.UNKNOWN_STATUS


def pair_status(symbol: str) -> ExchangeStatus:
    try:
        return market.pair_status(symbol)
    except redis.RedisError:
        return market.UNKNOWN_STATUS


@dataclass(frozen=True)
class FeeRates:
    taker_pct: Decimal
    maker_pct: Decimal
    # "tier" (the account's 30-day volume tier from TradeVolume) or "schedule" (the pair's
    # base tier, when TradeVolume could not be read).
    source: str


def _schedule_rates(pair: AssetPair) -> FeeRates:
    taker = dec(pair.fees[0][1]) if pair.fees else None
    maker = dec(pair.fees_maker[0][1]) if pair.fees_maker else None
    return FeeRates(
        taker_pct=taker if taker is not None else Decimal("0.40"),
        maker_pct=maker if maker is not None else (taker if taker is not None else Decimal("0.25")),
        source="schedule",
    )


def fee_rates(*, credential: Credential | None, pair: AssetPair) -> FeeRates:
    """The account's fee tier for `pair`, from TradeVolume (cached a few minutes per account
    and pair: the 30-day volume moves slowly and each read costs REST budget)."""
    if credential is None:
        return _schedule_rates(pair)
    key = f"trading:fees:{credential.account_id}:{pair.altname}"
    try:
        cached = _redis().get(key)
    except redis.RedisError:
        cached = None
    if cached:
        data = json.loads(cached)
        return FeeRates(Decimal(data["taker"]), Decimal(data["maker"]), "tier")
    try:
        result = private_read(
            credential=credential, method="TradeVolume", params={"pair": pair.altname}
        )
        fees = (result.get("fees") or {}) if isinstance(result, dict) else {}
        makers = (result.get("fees_maker") or {}) if isinstance(result, dict) else {}
        taker_entry: dict[str, Any] = next(iter(fees.values()), {}) if fees else {}
        maker_entry: dict[str, Any] = next(iter(makers.values()), {}) if makers else {}
        taker = dec(taker_entry.get("fee"))
        maker = dec(maker_entry.get("fee")) if maker_entry else taker
    except Exception:  # the estimate falls back to the schedule; the order is unaffected
        logger.info("trading: TradeVolume unavailable for credential %s", credential.pk)
        return _schedule_rates(pair)
    if taker is None or maker is None:
        return _schedule_rates(pair)
    with contextlib.suppress(redis.RedisError):
        _redis().set(
            key,
            json.dumps({"taker": str(taker), "maker": str(maker)}),
            ex=FEE_CACHE_SECONDS,
        )
    return FeeRates(taker, maker, "tier")
