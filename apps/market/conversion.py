"""The conversion service: the value of any asset in a reporting currency, from live prices.

Prices are the market feeder's tickers (the mid of the best bid and ask; the last trade while a
side is empty). A value takes the first route the feed offers: the direct pair (`BTC/EUR`), the
inverse pair (`EUR/USD` for USD in EUR), or two steps through USD (ETH -> USD -> EUR). Each price
carries its age: how long ago Kraken last confirmed it (see selectors.confirmed_at: a ticker on
the feeder's open socket is confirmed by every later word from Kraken, which pushes each change).
A price older than MARKET_PRICE_MAX_AGE is refused rather than used (fail closed): approvals
and limits judged on an old price are judged wrongly. Decimal throughout; the value is kept at
storage precision (VALUE_EXPONENT) and formatted only for display.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from django.conf import settings

from apps.core import amounts
from apps.kraken.naming import normalize_asset
from apps.market import selectors

PIVOT = "USD"
# Storage precision of a value: the portal's amount columns (apps.core.amounts, 18 places,
# which covers every asset Kraken lists). Rates are not quantized to places: a small rate (a
# token in BTC) would lose its significant digits.
VALUE_EXPONENT = amounts.step(amounts.STORAGE_DECIMAL_PLACES)
RATE_DIGITS = 34  # significant digits of an inverse rate (decimal128)
_WIDE = 80  # working precision: quantity x rate never rounds before the final quantize

NO_ROUTE = (
    "No live price values {asset} in {currency}: the market feed has no {asset}/{currency} "
    "pair, no {currency}/{asset} pair and no route through USD."
)
NO_PRICE_YET = "The market feed has no price for {symbol} yet, so {asset} cannot be valued now."
STALE_PRICE = (
    "The {symbol} price is {age:.0f} s old (the limit is {limit:.0f} s), so {asset} cannot be "
    "valued in {currency} until the market feed is current again."
)
NOT_A_QUANTITY = "The quantity to value must be a finite decimal number."


class ConversionError(Exception):
    """A value could not be given; `message` says why, for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoPrice(ConversionError):
    """The feed offers no route, or has not received the price yet."""


class StalePrice(ConversionError):
    """A price on the route is older than the limit."""

    def __init__(self, message: str, *, symbol: str, age_seconds: float, limit: float) -> None:
        super().__init__(message)
        self.symbol = symbol
        self.age_seconds = age_seconds
        self.limit = limit


@dataclass(frozen=True)
class Leg:
    """One step of a valuation: a pair's price, used as is or inverted."""

    symbol: str  # the pair as the feed names it, BTC/USD
    inverse: bool  # True: the step goes from the pair's quote to its base (1 / price)
    price: Decimal  # the pair's mid price
    rate: Decimal  # what the step multiplies by: price, or 1 / price
    as_of: datetime  # when Kraken last confirmed the price

    def __str__(self) -> str:
        return f"1/({self.symbol})" if self.inverse else self.symbol


@dataclass(frozen=True)
class Valuation:
    value: Decimal  # quantity x rate, in the currency, at VALUE_EXPONENT
    rate: Decimal  # currency per unit of the asset (the product of the legs' rates)
    as_of: datetime  # when the oldest price used was last confirmed
    age_seconds: float  # how old that price is now
    path: tuple[Leg, ...]  # empty when the asset is the currency

    @property
    def route(self) -> str:
        """`ETH/USD * 1/(EUR/USD)`, for a frozen summary or a tooltip."""
        return " * ".join(str(leg) for leg in self.path) or "same currency"


def value_in(
    *, asset: str, quantity: Decimal, currency: str, max_age: float | None = None
) -> Valuation:
    """The value of `quantity` of `asset` in `currency`, from live prices.

    `max_age` (seconds) defaults to MARKET_PRICE_MAX_AGE; a caller may ask for fresher.
    Raises NoPrice when the feed cannot price the route, StalePrice when a price is too old.
    """
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        raise ValueError(NOT_A_QUANTITY)
    # Kraken's REST spellings (`XXBT`, `ZEUR`) become the feed's (`BTC`, `EUR`).
    asset, currency = normalize_asset(asset), normalize_asset(currency)
    limit = settings.MARKET_PRICE_MAX_AGE if max_age is None else max_age
    now = time.time()
    if asset == currency:
        return Valuation(
            value=_quantize(quantity),
            rate=Decimal(1),
            as_of=datetime.fromtimestamp(now, tz=UTC),
            age_seconds=0.0,
            path=(),
        )
    steps = _route(asset, currency, {p["symbol"] for p in selectors.market_pairs()})
    if steps is None:
        raise NoPrice(NO_ROUTE.format(asset=asset, currency=currency))
    states = selectors.market_states(symbols=[symbol for symbol, _ in steps])
    pulse = selectors.feeder_pulse()
    legs: list[Leg] = []
    for symbol, inverse in steps:
        leg = _leg(symbol, inverse, states.get(symbol), pulse)
        if leg is None:
            raise NoPrice(NO_PRICE_YET.format(symbol=symbol, asset=asset))
        age = max(0.0, now - leg.as_of.timestamp())
        if age > limit:
            message = STALE_PRICE.format(
                symbol=symbol, age=age, limit=limit, asset=asset, currency=currency
            )
            raise StalePrice(message, symbol=symbol, age_seconds=age, limit=limit)
        legs.append(leg)
    with localcontext() as ctx:
        ctx.prec = _WIDE
        rate = Decimal(1)
        for leg in legs:
            rate *= leg.rate
        value = _quantize(quantity * rate)
    as_of = min(leg.as_of for leg in legs)
    return Valuation(
        value=value,
        rate=rate,
        as_of=as_of,
        age_seconds=max(0.0, now - as_of.timestamp()),
        path=tuple(legs),
    )


def _quantize(amount: Decimal) -> Decimal:
    """At storage precision, half-even (amounts.to_storage: a derived value's one rounding,
    which also widens its context for a large amount and never returns "-0")."""
    return amounts.to_storage(amount)


def _route(asset: str, currency: str, pairs: set[str]) -> list[tuple[str, bool]] | None:
    """The pairs (and whether each is used inverted) that take `asset` to `currency`."""

    def step(base: str, quote: str) -> tuple[str, bool] | None:
        if f"{base}/{quote}" in pairs:
            return f"{base}/{quote}", False
        if f"{quote}/{base}" in pairs:
            return f"{quote}/{base}", True
        return None

    direct = step(asset, currency)
    if direct is not None:
        return [direct]
    if PIVOT in (asset, currency):
        return None
    first, second = step(asset, PIVOT), step(PIVOT, currency)
    if first is None or second is None:
        return None
    return [first, second]


def _leg(
    symbol: str, inverse: bool, state: dict[str, Any] | None, pulse: dict[str, float]
) -> Leg | None:
    state = state or {}
    ticker = state.get("ticker") or {}
    bid, ask, last = ticker.get("bid"), ticker.get("ask"), ticker.get("last")
    if bid is not None and ask is not None:
        price = (Decimal(bid) + Decimal(ask)) / 2
    elif last is not None:
        price = Decimal(last)
    else:
        return None
    if price <= 0:
        return None
    received = float((state.get("stamps") or {}).get("stats") or state.get("received_at") or 0)
    if not received:
        return None
    confirmed = selectors.confirmed_at(received_at=received, feeder=pulse)
    rate = price
    if inverse:
        with localcontext() as ctx:
            ctx.prec = RATE_DIGITS
            rate = Decimal(1) / price
    return Leg(
        symbol=symbol,
        inverse=inverse,
        price=price,
        rate=rate,
        as_of=datetime.fromtimestamp(confirmed, tz=UTC),
    )
