"""The conversion service against prices the real feeder took from the Kraken sandbox: direct,
inverse and USD-pivot routes, Decimal arithmetic over any quantity, and refusal when a price is
missing or old."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal, localcontext
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from apps.market.conversion import (
    VALUE_EXPONENT,
    NoPrice,
    StalePrice,
    Valuation,
    value_in,
)
from apps.market.feeder.client import Feeder
from apps.market.store import loads, state_key
from tests.market.conftest import eventually, make_feeder

pytestmark = pytest.mark.timeout(120)

# BTC/EUR direct; USD in BTC inverse; ETH in EUR through USD (there is no ETH/EUR pair).
CONVERSION_PAIRS = ["BTC/USD", "ETH/USD", "BTC/EUR", "EUR/USD"]
QUANTITIES = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=10, allow_nan=False
)
FROZEN = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _priced(feeder: Feeder) -> bool:
    return len(feeder.states) == len(CONVERSION_PAIRS) and all(
        "bid" in s.ticker and "ask" in s.ticker and "stats" in s.stamps
        for s in feeder.states.values()
    )


async def _feed(sandbox: Any, *, stop: bool) -> tuple[Feeder, asyncio.Task[None], Redis]:
    client = Redis.from_url(django_settings.REDIS_URL)
    feeder = make_feeder(sandbox, client, pairs=CONVERSION_PAIRS)
    task = asyncio.create_task(feeder.run_forever())
    await eventually(lambda: _priced(feeder))
    await asyncio.sleep(0.8)  # the trailing flush stores the newest tickers, the pulse its time
    if stop:
        await _stop(task, client)
    return feeder, task, client


async def _stop(task: asyncio.Task[None], client: Redis) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.aclose()


@pytest.fixture
def frozen_prices(sandbox: Any, market_redis: None, settings: Any) -> None:
    """Prices the feeder stored, then stopped: they stay put, so each example sees the same
    ones (and are accepted however old: these tests are about the arithmetic)."""
    asyncio.run(_feed(sandbox, stop=True))
    settings.MARKET_PRICE_MAX_AGE = 24 * 3600


def _mid(symbol: str) -> Decimal:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    ticker = loads(client.get(state_key(symbol)))["ticker"]
    client.close()
    return (Decimal(ticker["bid"]) + Decimal(ticker["ask"])) / 2


def _exact(quantity: Decimal, rate: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (quantity * rate).quantize(VALUE_EXPONENT)


def test_a_direct_pair_values_at_its_mid_price(frozen_prices: None) -> None:
    valuation = value_in(asset="BTC", quantity=Decimal("2.5"), currency="EUR")
    assert [str(leg) for leg in valuation.path] == ["BTC/EUR"]
    assert valuation.rate == _mid("BTC/EUR")
    assert valuation.value == _exact(Decimal("2.5"), _mid("BTC/EUR"))
    assert isinstance(valuation.value, Decimal)
    assert valuation.as_of == valuation.path[0].as_of


def test_an_inverse_pair_values_at_one_over_its_price(frozen_prices: None) -> None:
    valuation = value_in(asset="USD", quantity=Decimal(1000), currency="BTC")
    assert valuation.route == "1/(BTC/USD)"
    assert valuation.rate * _mid("BTC/USD") == pytest.approx(Decimal(1), rel=Decimal("1e-30"))


def test_an_asset_without_a_pair_in_the_currency_goes_through_usd(frozen_prices: None) -> None:
    valuation = value_in(asset="ETH", quantity=Decimal(3), currency="EUR")
    assert valuation.route == "ETH/USD * 1/(EUR/USD)"
    expected = _mid("ETH/USD") / _mid("EUR/USD")
    assert valuation.rate == pytest.approx(expected, rel=Decimal("1e-30"))
    assert valuation.as_of == min(leg.as_of for leg in valuation.path)


def test_krakens_rest_spellings_of_assets_are_understood(frozen_prices: None) -> None:
    assert value_in(asset="XXBT", quantity=Decimal(1), currency="ZUSD").route == "BTC/USD"
    assert value_in(asset="XBT", quantity=Decimal(1), currency="usd").route == "BTC/USD"


def test_an_asset_valued_in_itself_is_its_quantity(frozen_prices: None) -> None:
    valuation = value_in(asset="EUR", quantity=Decimal("12.345"), currency="EUR")
    assert valuation.value == Decimal("12.345")
    assert valuation.rate == 1
    assert valuation.path == ()


@FROZEN
@given(quantity=QUANTITIES)
def test_any_quantity_is_valued_exactly_at_the_rate(frozen_prices: None, quantity: Decimal) -> None:
    for asset, currency in (("BTC", "EUR"), ("USD", "BTC"), ("ETH", "EUR")):
        valuation = value_in(asset=asset, quantity=quantity, currency=currency)
        assert isinstance(valuation.value, Decimal)
        assert valuation.value == _exact(quantity, valuation.rate)
        assert valuation.value.as_tuple().exponent == VALUE_EXPONENT.as_tuple().exponent
        assert not (quantity >= 0 > valuation.value)  # prices are positive: signs agree
        assert not (quantity <= 0 < valuation.value)


@FROZEN
@given(first=QUANTITIES, second=QUANTITIES)
def test_values_add_up_and_keep_the_order_of_quantities(
    frozen_prices: None, first: Decimal, second: Decimal
) -> None:
    a = value_in(asset="ETH", quantity=first, currency="EUR").value
    b = value_in(asset="ETH", quantity=second, currency="EUR").value
    with localcontext() as ctx:
        # Values carry 18 places: a sum of two above 1e10 needs more than the default 28 digits.
        ctx.prec = 80
        both = value_in(asset="ETH", quantity=first + second, currency="EUR").value
        assert abs(both - (a + b)) <= 2 * VALUE_EXPONENT  # one rounding each
    if first <= second:
        assert a <= b


@FROZEN
@given(quantity=QUANTITIES)
def test_there_and_back_returns_the_quantity(frozen_prices: None, quantity: Decimal) -> None:
    there = value_in(asset="BTC", quantity=quantity, currency="USD")
    back = value_in(asset="USD", quantity=there.value, currency="BTC")
    # The only losses: the 18-place rounding of the USD value, and of the BTC result.
    with localcontext() as ctx:
        ctx.prec = 80
        assert abs(back.value - quantity) <= 2 * VALUE_EXPONENT


def test_a_currency_the_feed_cannot_reach_is_refused_clearly(frozen_prices: None) -> None:
    with pytest.raises(NoPrice) as refused:
        value_in(asset="BTC", quantity=Decimal(1), currency="JPY")
    assert refused.value.message == (
        "No live price values BTC in JPY: the market feed has no BTC/JPY pair, no JPY/BTC pair "
        "and no route through USD."
    )


def test_without_a_feed_nothing_is_valued(market_redis: None) -> None:
    with pytest.raises(NoPrice):
        value_in(asset="BTC", quantity=Decimal(1), currency="USD")


def test_a_non_finite_quantity_is_refused(frozen_prices: None) -> None:
    with pytest.raises(ValueError, match="finite decimal"):
        value_in(asset="BTC", quantity=Decimal("NaN"), currency="USD")


def test_an_old_price_is_refused_not_used(sandbox: Any, market_redis: None, settings: Any) -> None:
    asyncio.run(_feed(sandbox, stop=True))  # the feed stops: nothing confirms the prices now
    settings.MARKET_PRICE_MAX_AGE = 1.0

    def refused() -> StalePrice | None:
        try:
            value_in(asset="ETH", quantity=Decimal(1), currency="EUR")
        except StalePrice as stale:
            return stale
        return None

    stale = asyncio.run(eventually(refused))
    assert stale.symbol in {"ETH/USD", "EUR/USD"}
    assert stale.age_seconds > stale.limit == 1.0
    assert stale.message.startswith(f"The {stale.symbol} price is ")
    assert "(the limit is 1 s), so ETH cannot be valued in EUR" in stale.message


async def test_a_live_value_follows_the_market_and_says_how_old_its_price_is(
    sandbox: Any, market_redis: None
) -> None:
    feeder, task, client = await _feed(sandbox, stop=False)
    try:
        first = value_in(asset="BTC", quantity=Decimal(2), currency="USD")
        assert first.age_seconds <= django_settings.MARKET_PRICE_MAX_AGE
        target = (_mid("BTC/USD") * Decimal("1.04")).quantize(Decimal("0.1"))
        sandbox.move_price("BTC/USD", str(target))

        def moved() -> Valuation | None:
            valuation = value_in(asset="BTC", quantity=Decimal(2), currency="USD")
            return valuation if abs(valuation.rate - target) / target < Decimal("0.005") else None

        valuation = await eventually(moved, within=30)
        assert valuation.value == _exact(Decimal(2), valuation.rate)
        # The quiet pair's price stays fresh: the feed's heartbeats confirm it.
        assert value_in(asset="EUR", quantity=Decimal(1), currency="USD").age_seconds < (
            django_settings.MARKET_PRICE_MAX_AGE
        )
        assert feeder.state != "standby"
    finally:
        await _stop(task, client)
