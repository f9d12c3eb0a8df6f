"""A non-idempotent Kraken call is sent only as a declared exchange operation or validate-only:
anything else is refused before a nonce or any rate budget is used. Reads are retried on
transient failures; writes never are."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.kraken import errors, nonce, ratelimit
from apps.kraken.client import (
    NON_IDEMPOTENT,
    KrakenKey,
    OperationRef,
    OperationRequiredError,
    is_idempotent,
    kraken_private,
)
from tests.kraken.conftest import sandbox_limits

MakeKey = Callable[..., KrakenKey]
ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": Decimal("0.01"),
    "price": Decimal("1000"),
}
# Plausible parameters per method; none of these requests may leave the process.
PARAMS: dict[str, dict[str, Any]] = {
    "AddOrder": ORDER,
    "AddOrderBatch": {"pair": "XBTUSD", "orders": [ORDER, ORDER]},
    "EditOrder": {"pair": "XBTUSD", "txid": "OAAAAA-BBBBB-CCCCCC", "volume": "0.02"},
    "AmendOrder": {"txid": "OAAAAA-BBBBB-CCCCCC", "order_qty": "0.02"},
    "CancelOrder": {"txid": "OAAAAA-BBBBB-CCCCCC"},
    "CancelOrderBatch": {"orders": ["OAAAAA-BBBBB-CCCCCC"]},
    "CancelAll": {},
    "Withdraw": {"asset": "XBT", "key": "cold-wallet", "amount": Decimal("0.1")},
    "WithdrawCancel": {"asset": "XBT", "refid": "FTQcuak-V6Za8qrWnhzTx67yYHz8Tg"},
    "WalletTransfer": {"asset": "XBT", "from": "Spot Wallet", "to": "Futures", "amount": "1"},
    "AccountTransfer": {"asset": "XBT", "amount": "1", "from": "A1", "to": "A2"},
    "CreateSubaccount": {"username": "desk", "email": "desk@example.com"},
    "Earn/Allocate": {"strategy_id": "ESRFUO3-Q62XD-WIOIL7", "amount": "1"},
    "Earn/Deallocate": {"strategy_id": "ESRFUO3-Q62XD-WIOIL7", "amount": "1"},
    "Stake": {"asset": "DOT", "amount": "1", "method": "polkadot-staked"},
    "Unstake": {"asset": "DOT", "amount": "1"},
    "AddExport": {"report": "ledgers", "description": "year end"},
    "RemoveExport": {"id": "TCJA", "type": "delete"},
}


def untouched(key: KrakenKey, sandbox: Any) -> bool:
    """Nothing of ``key`` was used: no nonce, no rate budget here, no call at the exchange."""
    redis = nonce.redis_client()
    ref = nonce.key_ref(key.api_key)
    used = redis.keys(f"kraken:*{ref}*")
    return not used and float(sandbox_limits(sandbox, key.api_key)["api_counter"]) == 0


def test_the_table_of_parameters_covers_every_non_idempotent_method() -> None:
    assert set(PARAMS) == NON_IDEMPOTENT


@pytest.mark.parametrize("method", sorted(NON_IDEMPOTENT))
def test_a_write_without_an_operation_is_refused_before_anything_is_sent(
    make_key: MakeKey, kraken_sandbox: Any, method: str
) -> None:
    key = make_key()
    with pytest.raises(OperationRequiredError) as info:
        kraken_private(key, method, PARAMS[method])
    assert not isinstance(info.value, errors.KrakenError)
    assert "was not sent" in str(info.value)
    assert untouched(key, kraken_sandbox)


def test_a_new_deposit_address_is_a_write_too(make_key: MakeKey, kraken_sandbox: Any) -> None:
    key = make_key()
    with pytest.raises(OperationRequiredError):
        kraken_private(key, "DepositAddresses", {"asset": "XBT", "method": "Bitcoin", "new": True})
    assert untouched(key, kraken_sandbox)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        # Kraken has no validate on these: it would ignore the flag and carry them out.
        ("AmendOrder", {**PARAMS["AmendOrder"], "validate": True}),
        ("Withdraw", {**PARAMS["Withdraw"], "validate": True}),
        ("CancelOrder", {**PARAMS["CancelOrder"], "validate": True}),
        # Only the explicit bool counts; a string is not a declaration.
        ("AddOrder", {**ORDER, "validate": "true"}),
        ("AddOrder", {**ORDER, "validate": False}),
    ],
)
def test_validate_counts_only_where_kraken_honours_it_and_only_as_true(
    make_key: MakeKey, kraken_sandbox: Any, method: str, params: dict[str, Any]
) -> None:
    key = make_key()
    with pytest.raises(OperationRequiredError):
        kraken_private(key, method, params)
    assert untouched(key, kraken_sandbox)


def test_a_validate_only_order_is_sent_without_an_operation_and_places_nothing(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    result = kraken_private(key, "AddOrder", {**ORDER, "validate": True})
    assert "txid" not in result
    assert kraken_sandbox.account(key.key_id.split(":", 1)[1])["open_orders"] == []


def test_a_validate_only_order_is_retried_like_a_read(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    assert is_idempotent("AddOrder", {**ORDER, "validate": True})
    kraken_sandbox.set_faults([{"kind": "busy", "endpoint": "AddOrder", "count": 2}])
    kraken_private(key, "AddOrder", {**ORDER, "validate": True})
    (rule,) = kraken_sandbox.control("GET", "/sandbox/faults")["rules"]
    assert rule["count"] == 0


def test_a_declared_operation_is_sent_once_and_never_retried(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    kraken_sandbox.set_faults([{"kind": "http_5xx", "endpoint": "AddOrder", "count": 3}])
    with pytest.raises(errors.UnknownOutcomeError):
        kraken_private(key, "AddOrder", ORDER, operation=OperationRef("op-1"))
    (rule,) = kraken_sandbox.control("GET", "/sandbox/faults")["rules"]
    assert rule["count"] == 2


@pytest.mark.parametrize("fault", [{"kind": "busy"}, {"kind": "http_5xx", "status": 502}])
def test_a_read_is_retried_through_the_same_failures(
    make_key: MakeKey, kraken_sandbox: Any, fault: dict[str, Any]
) -> None:
    key = make_key()
    kraken_sandbox.set_faults([{**fault, "endpoint": "OpenOrders", "count": 2}])
    assert kraken_private(key, "OpenOrders") == {"open": {}}
    (rule,) = kraken_sandbox.control("GET", "/sandbox/faults")["rules"]
    assert rule["count"] == 0


def test_a_write_cannot_be_made_retryable_by_the_caller(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    with pytest.raises(ValueError, match="idempotent"):
        kraken_private(key, "AddOrder", ORDER, operation=OperationRef("op-2"), idempotent=True)
    assert untouched(key, kraken_sandbox)


def test_an_operation_reference_needs_the_operations_id() -> None:
    with pytest.raises(ValueError, match="id"):
        OperationRef(" ")


def test_a_refused_write_leaves_the_rate_model_as_it_was(make_key: MakeKey) -> None:
    key = make_key(tier="starter")
    charges = ratelimit.charges_for(
        api_key=key.api_key, tier=key.tier, method="AddOrder", params=ORDER
    )
    before = ratelimit.peek(charges)
    for _ in range(100):
        with pytest.raises(OperationRequiredError):
            kraken_private(key, "AddOrder", ORDER)
    assert ratelimit.peek(charges) == before == 0


def test_only_the_exchange_app_declares_operations() -> None:
    """``OperationRef(`` is the one greppable way to send a write: outside apps/exchange (and
    the client that defines it) no production module may build one."""
    root = Path(__file__).resolve().parents[2]
    allowed = {root / "apps/kraken/client.py"}
    found = [
        path.relative_to(root).as_posix()
        for top in ("apps", "kraken_portal", "scripts", "bench")
        for path in (root / top).rglob("*.py")
        if path not in allowed
        and not path.is_relative_to(root / "apps/exchange")
        and "OperationRef(" in path.read_text(encoding="utf-8")
    ]
    assert found == []
