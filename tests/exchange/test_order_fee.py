"""An order's `fee` is Kraken's: in the quote currency. Fees charged in another asset stay on
the fills' (asset, qty) lists and are never summed into it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.exchange.models import ExchangeFill, ExchangeOrder
from apps.exchange.streams.records import _refresh_fee
from tests.factories import master_account


@pytest.mark.django_db
def test_an_orders_fee_counts_the_quote_currency_only(org) -> None:
    account = master_account(org)
    order = ExchangeOrder.objects.create(account=account, txid="OFEE-1", pair="BTC/USD")
    for trade_id, fees in (
        ("T1", [{"asset": "USD", "qty": "0.26"}]),
        ("T2", [{"asset": "USD", "qty": "0.10"}, {"asset": "BTC", "qty": "0.0001"}]),
    ):
        ExchangeFill.objects.create(
            account=account,
            trade_id=trade_id,
            order=order,
            pair="BTC/USD",
            price=Decimal(50000),
            qty=Decimal("0.01"),
            fees=fees,
            executed_at=datetime(2026, 12, 1, tzinfo=UTC),
        )
    _refresh_fee(order)
    assert order.fee == Decimal("0.36")
