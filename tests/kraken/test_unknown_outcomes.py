"""Against the sandbox: which answers to a write leave its outcome unknown (reconcile, never
resend) and which are definite refusals (typed errors), as errors.ERROR_TABLE says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.kraken import errors, nonce
from apps.kraken.client import (
    KrakenKey,
    OperationRef,
    PortalSpotClient,
    base_url,
    kraken_private,
    kraken_public,
)

MakeKey = Callable[..., KrakenKey]
OP = OperationRef("test-operation")
ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": Decimal("0.01")}


def low_price() -> Decimal:
    """A buy price far below the market, so the order rests instead of filling."""
    ticker = kraken_public("Ticker", {"pair": "XBTUSD"})
    (entry,) = ticker.values()
    return (Decimal(entry["b"][0]) / 2).quantize(Decimal(1))


def open_orders(sandbox: Any, key: KrakenKey) -> list[str]:
    return list(sandbox.account(key.key_id.split(":", 1)[1])["open_orders"])


def fault_activations_left(sandbox: Any) -> int:
    (rule,) = sandbox.control("GET", "/sandbox/faults")["rules"]
    return int(rule["count"])


@pytest.mark.parametrize(
    ("kind", "code"), [("busy", "EService:Busy"), ("unavailable", "EService:Unavailable")]
)
def test_an_overloaded_or_offline_answer_to_an_order_is_an_unknown_outcome_sent_once(
    make_key: MakeKey, kraken_sandbox: Any, kind: str, code: str
) -> None:
    key = make_key()
    price = low_price()
    # Three activations: a retry would consume a second one.
    kraken_sandbox.set_faults([{"kind": kind, "endpoint": "AddOrder", "count": 3}])
    with pytest.raises(errors.UnknownOutcomeError) as info:
        kraken_private(
            key, "AddOrder", {**ORDER, "price": price, "cl_ord_id": "desk-7"}, operation=OP
        )
    assert info.value.code == code
    assert info.value.reference == "cl_ord_id=desk-7"
    assert fault_activations_left(kraken_sandbox) == 2


def test_an_order_during_maintenance_is_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    price = low_price()
    kraken_sandbox.set_status("maintenance")
    try:
        with pytest.raises(errors.UnknownOutcomeError) as info:
            kraken_private(key, "AddOrder", {**ORDER, "price": price}, operation=OP)
    finally:
        kraken_sandbox.set_status("online")
    assert info.value.code == "EService:Unavailable"


def test_the_same_outage_on_a_read_is_retried_not_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    kraken_sandbox.set_faults([{"kind": "busy", "endpoint": "Balance", "count": 2}])
    assert "ZUSD" in kraken_private(key, "Balance")
    assert fault_activations_left(kraken_sandbox) == 0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("cancel_only", "EService:Market in cancel_only mode"),
        ("post_only", "EService:Market in post_only mode"),
    ],
)
def test_a_restricted_market_is_a_rejection_not_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any, status: str, code: str
) -> None:
    key = make_key()
    price = low_price()
    kraken_sandbox.set_status(status)
    try:
        with pytest.raises(errors.KrakenError) as info:
            kraken_private(key, "AddOrder", {**ORDER, "price": price}, operation=OP)
    finally:
        kraken_sandbox.set_status("online")
    assert type(info.value) is errors.MarketRestrictedError
    assert info.value.code == code
    assert open_orders(kraken_sandbox, key) == []


def test_an_elapsed_deadline_is_a_rejection_not_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    price = low_price()
    sandbox_now = float(kraken_sandbox.health()["time"])
    deadline = datetime.fromtimestamp(sandbox_now - 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(errors.KrakenError) as info:
        kraken_private(
            key, "AddOrder", {**ORDER, "price": price, "deadline": deadline}, operation=OP
        )
    assert type(info.value) is errors.ServiceUnavailableError
    assert info.value.code == "EService:Deadline elapsed"
    assert open_orders(kraken_sandbox, key) == []


def test_insufficient_funds_on_an_order_is_a_rejection(make_key: MakeKey) -> None:
    key = make_key(balances={"USD": "10"})
    with pytest.raises(errors.KrakenError) as info:
        kraken_private(key, "AddOrder", {**ORDER, "price": low_price()}, operation=OP)
    assert type(info.value) is errors.InsufficientFundsError


def other_program(key: KrakenKey) -> PortalSpotClient:
    """Another program on the same key (sharing its nonce counter, not its rate model)."""
    return PortalSpotClient(
        api_key=key.api_key,
        secret=key.secret,
        url=base_url(),
        timeout=5,
        nonce_source=lambda: nonce.next_nonce(key.api_key),
    )


def test_a_write_over_the_rest_limit_is_a_rejection(make_key: MakeKey) -> None:
    key = make_key(tier="pro")
    other = other_program(key)
    for _ in range(25):
        other.request("POST", "/0/private/Balance")
    withdrawal = {"asset": "XBT", "key": "cold-wallet", "amount": Decimal("0.1")}
    with pytest.raises(errors.KrakenError) as info:
        kraken_private(key, "Withdraw", withdrawal, operation=OP)
    assert type(info.value) is errors.RateLimitError
    assert info.value.code == "EAPI:Rate limit exceeded"


def test_an_order_over_the_trading_limit_is_a_rejection(make_key: MakeKey) -> None:
    key = make_key(tier="starter")
    other = other_program(key)
    order = {**ORDER, "price": "1000", "validate": "true"}
    for _ in range(61):
        other.request("POST", "/0/private/AddOrder", params=dict(order))
    with pytest.raises(errors.KrakenError) as info:
        kraken_private(key, "AddOrder", {**ORDER, "price": low_price()}, operation=OP)
    assert type(info.value) is errors.RateLimitError
    assert info.value.code == "EOrder:Rate limit exceeded"


def account_of(key: KrakenKey) -> str:
    return key.key_id.split(":", 1)[1]


@pytest.mark.parametrize(
    ("params", "cls", "code"),
    [
        (
            {"key": "nowhere", "amount": Decimal("0.1")},
            errors.InvalidArgumentsError,
            "EFunding:Unknown withdraw key",
        ),
        (
            {"key": "cold", "amount": Decimal("0.1"), "max_fee": Decimal("0")},
            errors.InvalidArgumentsError,
            "EFunding:Max fee exceeded",
        ),
        # Not in the table: still Kraken's refusal, so a plain rejection, never unknown.
        (
            {"key": "cold", "amount": Decimal("0.1"), "address": "bc1qsomeoneelse"},
            errors.KrakenError,
            "EFunding:Invalid withdrawal address",
        ),
        (
            {"key": "cold", "amount": Decimal("50")},
            errors.InsufficientFundsError,
            "EFunding:Insufficient funds",
        ),
    ],
)
def test_refused_withdrawals_are_rejections_and_move_nothing(
    make_key: MakeKey,
    kraken_sandbox: Any,
    params: dict[str, Any],
    cls: type[errors.KrakenError],
    code: str,
) -> None:
    key = make_key()
    account = account_of(key)
    kraken_sandbox.add_withdraw_address(account, "XBT", "cold", "bc1qcoldwalletaddress")
    before = kraken_sandbox.account(account)["balances"]
    with pytest.raises(errors.KrakenError) as info:
        kraken_private(key, "Withdraw", {"asset": "XBT", **params}, operation=OP)
    assert type(info.value) is cls
    assert info.value.code == code
    assert kraken_sandbox.account(account)["balances"] == before


def test_earn_refusals_are_rejections_even_when_kraken_says_busy(make_key: MakeKey) -> None:
    key = make_key(balances={"DOT": "100"})
    strategies = kraken_private(key, "Earn/Strategies", {"asset": "DOT"})["items"]
    strategy = next(s["id"] for s in strategies if s["lock_type"]["type"] == "instant")
    with pytest.raises(errors.KrakenError) as below:
        kraken_private(
            key,
            "Earn/Allocate",
            {"strategy_id": strategy, "amount": Decimal("0.001")},
            operation=OP,
        )
    assert type(below.value) is errors.InvalidArgumentsError
    assert below.value.code.startswith("EEarnings:Below min")
    allocate = {"strategy_id": strategy, "amount": Decimal("10")}
    assert kraken_private(key, "Earn/Allocate", allocate, operation=OP) is True
    # The first allocation is still pending: Kraken refuses the second, it does not queue it.
    with pytest.raises(errors.KrakenError) as busy:
        kraken_private(key, "Earn/Allocate", allocate, operation=OP)
    assert type(busy.value) is errors.ServiceUnavailableError
    assert busy.value.code.startswith("EEarnings:Busy")
