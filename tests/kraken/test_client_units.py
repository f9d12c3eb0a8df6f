"""Client pieces that need no exchange: keys, idempotency and parameter encoding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.kraken.client import KrakenKey, is_idempotent, wire_params


def test_a_key_never_shows_its_secret_or_otp() -> None:
    key = KrakenKey(key_id="cred:1", api_key="pub", secret="s3cr3t", otp="p4ss", tier="pro")
    assert "s3cr3t" not in repr(key)
    assert "p4ss" not in repr(key)
    assert "cred:1" in repr(key)


def test_a_key_with_an_unknown_tier_is_refused() -> None:
    with pytest.raises(ValueError, match="tier"):
        KrakenKey(key_id="cred:1", api_key="pub", secret="s", tier="platinum")


@pytest.mark.parametrize(
    "method",
    [
        "AddOrder",
        "AddOrderBatch",
        "EditOrder",
        "AmendOrder",
        "CancelOrder",
        "Withdraw",
        "WalletTransfer",
        "AccountTransfer",
        "Earn/Allocate",
        "Earn/Deallocate",
    ],
)
def test_writes_are_not_idempotent(method: str) -> None:
    assert not is_idempotent(method)


@pytest.mark.parametrize(
    "method", ["Balance", "OpenOrders", "QueryOrders", "Ledgers", "CancelAllOrdersAfter"]
)
def test_reads_are_idempotent(method: str) -> None:
    assert is_idempotent(method)


def test_asking_for_a_new_deposit_address_is_not_idempotent() -> None:
    assert is_idempotent("DepositAddresses", {"asset": "XBT", "method": "Bitcoin"})
    assert not is_idempotent("DepositAddresses", {"asset": "XBT", "new": True})


def test_form_parameters_are_encoded_as_kraken_expects() -> None:
    params: dict[str, Any] = {
        "pair": "XBTUSD",
        "volume": Decimal("1.50000000"),
        "price": Decimal("1E+4"),
        "oflags": ["post", "fciq"],
        "close": {"ordertype": "limit", "price": Decimal("9000")},
        "reduce_only": True,
        "validate": False,
        "userref": None,
        "timeout": 60,
    }
    assert wire_params(params, as_json=False) == {
        "pair": "XBTUSD",
        "volume": "1.5",
        "price": "10000",
        "oflags": "post,fciq",
        "close[ordertype]": "limit",
        "close[price]": "9000",
        "reduce_only": "true",
        "timeout": 60,
    }


def test_json_parameters_keep_their_structure() -> None:
    params = {"orders": [{"volume": Decimal("0.1"), "validate": True}], "validate": True}
    assert wire_params(params, as_json=True) == {
        "orders": [{"volume": "0.1", "validate": True}],
        "validate": True,
    }


def test_floats_are_refused_because_money_is_decimal() -> None:
    with pytest.raises(TypeError, match="never float"):
        wire_params({"volume": 0.1}, as_json=False)
