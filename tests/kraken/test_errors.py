"""Kraken error strings map to typed exceptions by prefix, with safe messages."""

from __future__ import annotations

import pytest

from apps.kraken import errors as e


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("EAPI:Invalid key", e.AuthenticationError),
        ("EAPI:Invalid signature", e.AuthenticationError),
        ("EGeneral:Temporary lockout", e.AuthenticationError),
        ("EAPI:Invalid nonce", e.NonceError),
        ("EGeneral:Permission denied", e.PermissionDeniedError),
        ("EAPI:Rate limit exceeded", e.RateLimitError),
        ("EOrder:Rate limit exceeded", e.RateLimitError),
        ("EService:Throttled: 1700000000", e.RateLimitError),
        ("EAuth:Rate limit exceeded", e.RateLimitError),
        ("EOrder:Insufficient funds", e.InsufficientFundsError),
        ("EGeneral:Invalid arguments:ordertype", e.InvalidArgumentsError),
        ("EQuery:Unknown asset pair", e.InvalidArgumentsError),
        ("EOrder:Order minimum not met", e.InvalidArgumentsError),
        ("EService:Unavailable", e.ServiceUnavailableError),
        ("EService:Market in cancel_only mode", e.ServiceUnavailableError),
        ("EGeneral:Internal error:123", e.ServiceUnavailableError),
        ("EOrder:Unknown order", e.UnknownOrderError),
        ("EFoo:Something new", e.KrakenError),
    ],
)
def test_error_strings_map_to_classes_by_prefix(code: str, cls: type[e.KrakenError]) -> None:
    exc = e.error_from_codes("AddOrder", [code])
    assert type(exc) is cls
    assert exc.code == code
    assert code in str(exc)
    assert "AddOrder" in str(exc)


def test_invalid_arguments_carry_the_field() -> None:
    exc = e.error_from_codes("AddOrder", ["EGeneral:Invalid arguments:ordertype"])
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field == "ordertype"
    exc = e.error_from_codes("AddOrder", ["EOrder:Tick size check failed"])
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field == "price"
    exc = e.error_from_codes("AddOrder", ["EGeneral:Invalid arguments:Index unavailable"])
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field is None
    assert exc.detail == "Index unavailable"


def test_warnings_are_not_mistaken_for_the_error() -> None:
    exc = e.error_from_codes("Balance", ["WGeneral:Something", "EAPI:Invalid nonce"])
    assert isinstance(exc, e.NonceError)


def test_only_passing_failures_are_transient() -> None:
    assert e.ServiceUnavailableError("Balance", ["EService:Unavailable"]).transient
    assert not e.ServiceUnavailableError("Balance", ["EService:Market in post_only mode"]).transient
    assert e.RateLimitError("Balance", ["EAPI:Rate limit exceeded"]).transient
    assert not e.NonceError("Balance", ["EAPI:Invalid nonce"]).transient
    assert not e.UnknownOutcomeError("AddOrder", detail="timeout").transient
