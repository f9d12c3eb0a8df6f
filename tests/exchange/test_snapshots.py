"""Balance snapshots: quantities and the price used then, never totals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.exchange import services
from apps.exchange.models import BalanceSnapshot
from apps.exchange.snapshots import balance_snapshots_take
from apps.market.conversion import value_in
from kraken_portal.celery import app as celery_app
from tests.exchange.conftest import Reader
from tests.market.conftest import market_redis  # noqa: F401 - a fixture frozen_prices uses
from tests.market.test_conversion import frozen_prices  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("frozen_prices")
def test_a_snapshot_keeps_quantities_and_the_price_used(
    reader: Reader, exchange_sandbox: Any
) -> None:
    services.balances_refresh(account=reader.account)
    assert balance_snapshots_take() == 4  # USD, BTC, DOT, ETH spot wallets
    snapshots = {s.asset: s for s in BalanceSnapshot.objects.filter(account=reader.account)}
    assert snapshots["BTC"].quantity == Decimal("5")
    assert snapshots["BTC"].wallet_type == "spot"
    assert snapshots["BTC"].wallet_id == "main"
    btc_usd = value_in(asset="BTC", quantity=Decimal(1), currency="USD").rate
    assert snapshots["BTC"].price == btc_usd
    assert snapshots["BTC"].price_currency == "USD"
    assert snapshots["USD"].price == Decimal(1)
    # No pair of the (frozen) feed values DOT: no price rather than a guess.
    assert snapshots["DOT"].quantity == Decimal("1000")
    assert snapshots["DOT"].price is None
    assert snapshots["DOT"].price_currency == ""


def test_beat_takes_snapshots_hourly() -> None:
    entry = celery_app.conf.beat_schedule["exchange-balance-snapshots"]
    assert entry["task"] == "apps.exchange.tasks.balance_snapshots_task"
