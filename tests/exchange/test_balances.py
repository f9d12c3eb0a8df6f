"""Balances and "spendable" (apps/exchange/balances.py) against the real sandbox, read through
`services.balances_refresh` (BalanceEx + Earn/Allocations with the designated read key)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.exchange import services
from apps.exchange.balances import account_balances, asset_balance, spendable
from apps.exchange.models import AccountBalance, BalanceSource
from tests.exchange.conftest import Reader

pytestmark = pytest.mark.django_db(transaction=True)

BONDED_DOT = "ESDQCOL-WTZEU-NU55QF"  # the sandbox's bonded DOT strategy (28-day unbonding)
INSTANT_DOT = "ESRFUO3-Q62XD-WIOIL7"
# Rewards accrue while the test runs (a few DOT-millionths a second at most).
REWARD_SLACK = Decimal("0.001")


def close_to(value: Decimal, expected: Decimal) -> bool:
    return expected <= value <= expected + REWARD_SLACK


def test_spot_balance_is_spendable(reader: Reader) -> None:
    services.balances_refresh(account=reader.account)
    assert spendable(account=reader.account, asset="USD") == Decimal("500000")
    # Any of Kraken's spellings names the same asset.
    assert spendable(account=reader.account, asset="XXBT") == Decimal("5")
    assert spendable(account=reader.account, asset="XBT") == Decimal("5")
    assert spendable(account=reader.account, asset="SOL") == Decimal(0)
    rows = AccountBalance.objects.filter(account=reader.account)
    assert {row.source for row in rows} == {BalanceSource.REST}


def test_held_funds_are_not_spendable(reader: Reader, exchange_sandbox: Any) -> None:
    # Another client on the account places an order that rests: its cost is held.
    reader.direct(
        exchange_sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "volume": "2", "price": "9999999"},
    )
    services.balances_refresh(account=reader.account)
    btc = asset_balance(account=reader.account, asset="BTC")
    assert btc.spot == Decimal("5")
    assert btc.held == Decimal("2")
    assert btc.total == Decimal("5")
    assert spendable(account=reader.account, asset="BTC") == Decimal("3")


def test_auto_earn_is_spendable_bonded_and_allocated_are_not(
    reader: Reader, exchange_sandbox: Any
) -> None:
    exchange_sandbox.control(
        "POST", f"/sandbox/accounts/{reader.account_id}/auto-earn", {"asset": "DOT", "amount": "60"}
    )
    reader.direct(exchange_sandbox, "Earn/Allocate", {"strategy_id": BONDED_DOT, "amount": "100"})
    reader.direct(exchange_sandbox, "Earn/Allocate", {"strategy_id": INSTANT_DOT, "amount": "40"})
    services.balances_refresh(account=reader.account)
    dot = asset_balance(account=reader.account, asset="DOT")
    assert dot.spot == Decimal("800")
    assert close_to(dot.earn["flex"], Decimal("60"))
    assert close_to(dot.earn["bonded"], Decimal("100"))
    assert close_to(dot.earn["flexible"], Decimal("40"))
    # Kraken's total already includes Earn: nothing is added on top.
    assert close_to(dot.total, Decimal("1000"))
    # Spot plus auto-earn; the bonded and instant allocations are not spendable.
    assert close_to(spendable(account=reader.account, asset="DOT"), Decimal("860"))
    assert {b.asset for b in account_balances(account=reader.account)} >= {"DOT", "USD", "BTC"}


def test_legacy_f_balances_are_not_counted_twice(reader: Reader, exchange_sandbox: Any) -> None:
    """Before 13 Nov 2025 BalanceEx also listed Earn funds as `DOT.F`: the refresh ignores
    them (Earn comes from Allocations), so either shape gives the same balances."""
    exchange_sandbox.control(
        "POST", f"/sandbox/accounts/{reader.account_id}/auto-earn", {"asset": "DOT", "amount": "60"}
    )
    exchange_sandbox.configure(legacy_f_balances=True)
    try:
        assert "DOT.F" in reader.direct(exchange_sandbox, "BalanceEx")
        services.balances_refresh(account=reader.account)
        legacy = asset_balance(account=reader.account, asset="DOT")
    finally:
        exchange_sandbox.configure(legacy_f_balances=False)
    services.balances_refresh(account=reader.account)
    current = asset_balance(account=reader.account, asset="DOT")
    for dot in (legacy, current):
        assert dot.spot == Decimal("940")
        assert close_to(dot.flex, Decimal("60"))
        assert close_to(dot.total, Decimal("1000"))
        assert close_to(dot.spendable, Decimal("1000"))
