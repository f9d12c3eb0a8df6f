"""Rate limits reproduce Kraken's documented numbers (FACTS §3), using the sandbox clock
(frozen, then fast-forwarded) instead of sleeping."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.plugins.sandbox import SandboxProcess

LIMIT = {"error": ["EAPI:Rate limit exceeded"]}
ORDER_LIMIT = {"error": ["EOrder:Rate limit exceeded"]}


@pytest.fixture
def frozen(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """Stop the sandbox clock (well, crawl at 1e-6x) so decay happens only via advance()."""
    sandbox.set_clock_speed(1e-6)
    try:
        yield sandbox
    finally:
        sandbox.set_clock_speed(1.0)


def _trading_counter(sb: SandboxProcess, key: str, pair: str = "XXBTZUSD") -> Decimal:
    query = urllib.parse.urlencode({"key": key})
    return Decimal(sb.control("GET", f"/sandbox/limits?{query}")["trading"].get(pair, "0"))


@pytest.mark.parametrize(
    ("tier", "cap", "decay"),
    [
        ("starter", 15, Decimal("0.33")),
        ("intermediate", 20, Decimal("0.5")),
        ("pro", 20, Decimal("1")),
    ],
)
def test_rest_counter(frozen: SandboxProcess, tier: str, cap: int, decay: Decimal) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "1000"}, tier=tier)
    key, secret = sb.create_key(acct)
    for _ in range(cap):
        assert sb.private(key, secret, "Balance")["error"] == []
    assert sb.private(key, secret, "Balance") == LIMIT
    # Decay: after 10 s, floor(10 * decay) more calls fit, then the limit bites again.
    sb.advance(10)
    allowed = int(10 * decay)
    for _ in range(allowed):
        assert sb.private(key, secret, "Balance")["error"] == []
    assert sb.private(key, secret, "Balance") == LIMIT


def test_ledger_calls_cost_two_and_trading_calls_are_free(frozen: SandboxProcess) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "100000"}, tier="starter")
    key, secret = sb.create_key(acct)
    for _ in range(7):  # 7 * 2 = 14
        assert sb.private(key, secret, "Ledgers")["error"] == []
    assert sb.private(key, secret, "TradesHistory") == LIMIT  # 14 + 2 > 15
    assert sb.private(key, secret, "Balance")["error"] == []  # 15
    assert sb.private(key, secret, "Balance") == LIMIT
    # AddOrder/CancelOrder run on the matching-engine limiter, not this counter.
    out = sb.private(
        key,
        secret,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1000", "volume": "0.01"},
    )
    assert out["error"] == []
    assert sb.private(key, secret, "CancelOrder", {"txid": out["result"]["txid"][0]})["error"] == []


def test_trading_counter_threshold_and_decay(frozen: SandboxProcess) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "100000"}, tier="starter")
    key, secret = sb.create_key(acct)
    # Invalid orders still cost the fixed +1 ("applied on receipt").
    bad = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "1000.05",
        "volume": "0.01",
    }
    for _ in range(60):
        assert sb.private(key, secret, "AddOrder", bad) == {
            "error": ["EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."]
        }
    assert sb.private(key, secret, "AddOrder", bad) == ORDER_LIMIT
    sb.advance(5)  # starter decays 1/s
    for _ in range(5):
        assert sb.private(key, secret, "AddOrder", bad)["error"] != ORDER_LIMIT["error"]
    assert sb.private(key, secret, "AddOrder", bad) == ORDER_LIMIT


@pytest.mark.parametrize(
    ("age", "penalty"), [(0, 8), (7, 6), (12, 5), (30, 4), (60, 2), (200, 1), (400, 0)]
)
def test_cancel_penalty_by_order_age(frozen: SandboxProcess, age: float, penalty: int) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "100000"}, tier="pro")
    key, secret = sb.create_key(acct)
    out = sb.private(
        key,
        secret,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1000", "volume": "0.01"},
    )
    txid = out["result"]["txid"][0]
    if age:
        sb.advance(age)
    before = _trading_counter(sb, key)
    assert sb.private(key, secret, "CancelOrder", {"txid": txid})["error"] == []
    after = _trading_counter(sb, key)
    assert after - before == pytest.approx(penalty, abs=Decimal("0.01"))


def test_amend_penalty(frozen: SandboxProcess) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "100000"}, tier="pro")
    key, secret = sb.create_key(acct)
    out = sb.private(
        key,
        secret,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1000", "volume": "0.01"},
    )
    before = _trading_counter(sb, key)
    sb.private(key, secret, "AmendOrder", {"txid": out["result"]["txid"][0], "limit_price": "1001"})
    assert _trading_counter(sb, key) - before == pytest.approx(4, abs=Decimal("0.01"))


def test_open_orders_per_pair_limit(frozen: SandboxProcess) -> None:
    sb = frozen
    acct = sb.create_account({"USD": "1000000"}, tier="starter")
    key, secret = sb.create_key(acct)
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "1000",
        "volume": "0.001",
    }
    for i in range(60):
        if i and i % 30 == 0:
            sb.advance(60)  # let the trading counter decay; open orders stay
        assert sb.private(key, secret, "AddOrder", order)["error"] == [], i
    sb.advance(60)
    assert sb.private(key, secret, "AddOrder", order) == {"error": ["EOrder:Orders limit exceeded"]}
    # Another pair has its own allowance.
    other = {**order, "pair": "ETHUSD", "volume": "0.01", "price": "100"}
    assert sb.private(key, secret, "AddOrder", other)["error"] == []
