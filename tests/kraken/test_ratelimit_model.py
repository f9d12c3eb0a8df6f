"""The Redis budget model: costs per method, admission, waiting and order ages."""

from __future__ import annotations

import secrets

import pytest

from apps.kraken import ratelimit


@pytest.fixture
def api_key() -> str:
    return "test-" + secrets.token_hex(8)


def charges(api_key: str, method: str, tier: str = "pro", **params: object):
    return ratelimit.charges_for(api_key=api_key, tier=tier, method=method, params=dict(params))


def test_ordinary_calls_cost_one_and_history_calls_cost_two(api_key: str) -> None:
    assert [c.amount for c in charges(api_key, "Balance")] == [1]
    assert [c.amount for c in charges(api_key, "Ledgers")] == [2]
    assert [c.amount for c in charges(api_key, "TradesHistory")] == [2]
    assert [c.amount for c in charges(api_key, "QueryLedgers")] == [2]


def test_orders_use_the_per_pair_trading_counter_not_the_rest_counter(api_key: str) -> None:
    (charge,) = charges(api_key, "AddOrder", pair="XBTUSD")
    assert charge.key.endswith(":BTC/USD")
    assert charge.amount == 1
    assert charge.capacity == 180 - ratelimit.HEADROOM
    (batch,) = charges(api_key, "AddOrderBatch", pair="XBT/USD", orders=[{}, {}, {}, {}])
    assert batch.amount == 2


def test_cancelling_a_young_order_costs_the_age_penalty(api_key: str) -> None:
    ratelimit.remember_orders(api_key=api_key, pair="XXBTZUSD", idents=["OABCDE-FGHIJ-KLMNOP"])
    (charge,) = charges(api_key, "CancelOrder", txid="OABCDE-FGHIJ-KLMNOP")
    assert charge.key.endswith(":BTC/USD")
    assert charge.amount == 8
    (edit,) = charges(api_key, "EditOrder", txid="OABCDE-FGHIJ-KLMNOP", pair="XBTUSD")
    assert edit.amount == 1 + 6
    assert charges(api_key, "CancelOrder", txid="ONOTOU-RSXXX-XXXXXX") == []


@pytest.mark.parametrize(
    ("age", "cost"), [(0, 8), (4.99, 8), (5, 6), (14, 5), (44, 4), (89, 2), (299, 1), (300, 0)]
)
def test_cancel_penalty_brackets(age: float, cost: int) -> None:
    assert ratelimit.age_penalty(ratelimit.CANCEL_PENALTY, age) == cost


def test_calls_are_admitted_until_the_budget_is_used_then_told_how_long_to_wait(
    api_key: str,
) -> None:
    rest = charges(api_key, "Balance", tier="starter")
    admitted = 0
    while ratelimit.try_take(rest) == 0:
        admitted += 1
        assert admitted < 100
    assert admitted == 15 - ratelimit.HEADROOM
    wait = ratelimit.peek(rest)
    # One more call needs one unit of decay at 0.33/s: about 3 s.
    assert 2.5 < wait <= 1 / 0.33


def test_a_refusal_charges_nothing(api_key: str) -> None:
    rest = charges(api_key, "Ledgers", tier="pro")
    for _ in range(9):
        assert ratelimit.try_take(rest) == 0
    assert ratelimit.try_take(rest) > 0  # 18 + 2 > 19
    assert ratelimit.try_take(charges(api_key, "Balance", tier="pro")) == 0  # 18 + 1 <= 19


def test_being_told_off_by_kraken_fills_the_model(api_key: str) -> None:
    rest = charges(api_key, "Balance", tier="pro")
    assert ratelimit.peek(rest) == 0
    ratelimit.mark_exhausted(rest)
    assert ratelimit.peek(rest) > 0.5


def test_the_theoretical_rate_counts_the_burst_and_the_decay() -> None:
    # Pro: 20 at once, then 1/s: 30 calls take 10 s.
    assert ratelimit.theoretical_rate("pro", 30) == pytest.approx(3.0)
    assert ratelimit.wait_time_for_cost(20, 1, 20, 0.5) == pytest.approx(2.0)
