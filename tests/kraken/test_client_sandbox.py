"""The client against the sandbox: results, every error class from real responses, retries of
reads, and unknown outcomes of writes that are never retried."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.kraken import errors, ratelimit
from apps.kraken.client import (
    KrakenKey,
    OperationRef,
    PortalSpotClient,
    base_url,
    kraken_private,
    kraken_public,
    nonce,
    websocket_token,
)

MakeKey = Callable[..., KrakenKey]
# These tests play the exchange layer's part: every order and cancel is a declared operation.
OP = OperationRef("test-operation")
ORDER = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": Decimal("0.01")}


def account_of(key: KrakenKey) -> str:
    return key.key_id.split(":", 1)[1]


def open_orders(sandbox: Any, key: KrakenKey) -> list[str]:
    return list(sandbox.account(account_of(key))["open_orders"])


def low_price() -> Decimal:
    """A buy price far below the market, so the order rests instead of filling."""
    ticker = kraken_public("Ticker", {"pair": "XBTUSD"})
    (entry,) = ticker.values()
    return (Decimal(entry["b"][0]) / 2).quantize(Decimal(1))


def test_public_calls_return_kraken_results(kraken_sandbox: Any) -> None:
    assert "unixtime" in kraken_public("Time")
    assert "XXBTZUSD" in kraken_public("AssetPairs", {"pair": "XBTUSD"})


def test_private_calls_return_balances_as_exact_strings(make_key: MakeKey) -> None:
    key = make_key()
    balance = kraken_private(key, "Balance")
    assert Decimal(balance["ZUSD"]) == Decimal("100000")


def test_a_wrong_secret_is_an_authentication_error_without_the_secret(
    make_key: MakeKey,
) -> None:
    good = make_key()
    bad = KrakenKey(key_id=good.key_id, api_key=good.api_key, secret="c2VjcmV0", tier="pro")
    with pytest.raises(errors.AuthenticationError) as info:
        kraken_private(bad, "Balance")
    assert info.value.code == "EAPI:Invalid signature"
    assert "c2VjcmV0" not in str(info.value)
    assert "c2VjcmV0" not in repr(bad)


def test_an_unknown_key_is_an_authentication_error(make_key: MakeKey) -> None:
    good = make_key()
    bad = KrakenKey(key_id="x", api_key="unknown" + good.api_key, secret=good.secret)
    with pytest.raises(errors.AuthenticationError) as info:
        kraken_private(bad, "Balance")
    assert info.value.code == "EAPI:Invalid key"


def test_repeated_bad_signatures_lock_the_key_out(make_key: MakeKey) -> None:
    good = make_key()
    bad = KrakenKey(key_id=good.key_id, api_key=good.api_key, secret="c2VjcmV0", tier="pro")
    codes = []
    for _ in range(11):
        with pytest.raises(errors.AuthenticationError) as info:
            kraken_private(bad, "Balance")
        codes.append(info.value.code)
    assert codes[-1] == "EGeneral:Temporary lockout"


def test_a_key_used_by_other_software_with_bigger_nonces_gives_a_nonce_error(
    make_key: MakeKey,
) -> None:
    key = make_key()
    other = PortalSpotClient(
        api_key=key.api_key,
        secret=key.secret,
        url=base_url(),
        timeout=5,
        nonce_source=lambda: 9_000_000_000_000_000_000,
    )
    assert other.request("POST", "/0/private/Balance").json()["error"] == []
    with pytest.raises(errors.NonceError) as info:
        kraken_private(key, "Balance")
    assert "its own key" in str(info.value)


def test_a_key_without_the_permission_gets_permission_denied(make_key: MakeKey) -> None:
    key = make_key(permissions=["query_funds"])
    with pytest.raises(errors.PermissionDeniedError):
        kraken_private(key, "OpenOrders")


def test_an_order_beyond_the_balance_is_insufficient_funds(make_key: MakeKey) -> None:
    key = make_key(balances={"USD": "10"})
    with pytest.raises(errors.InsufficientFundsError):
        kraken_private(key, "AddOrder", {**ORDER, "price": low_price()}, operation=OP)


def test_a_bad_argument_names_the_field(make_key: MakeKey) -> None:
    key = make_key()
    with pytest.raises(errors.InvalidArgumentsError) as info:
        kraken_private(
            key, "AddOrder", {**ORDER, "ordertype": "sideways", "price": "1"}, operation=OP
        )
    assert info.value.field == "ordertype"


def test_validate_false_places_a_real_order(make_key: MakeKey, kraken_sandbox: Any) -> None:
    key = make_key()
    result = kraken_private(
        key, "AddOrder", {**ORDER, "price": low_price(), "validate": False}, operation=OP
    )
    assert result["txid"]
    assert open_orders(kraken_sandbox, key) == result["txid"]


def test_kraken_rate_limit_answers_are_rate_limit_errors_and_fill_the_model(
    make_key: MakeKey,
) -> None:
    key = make_key(tier="pro")
    # Another program spends the key's whole budget behind the portal's back.
    other = PortalSpotClient(
        api_key=key.api_key,
        secret=key.secret,
        url=base_url(),
        timeout=5,
        nonce_source=lambda: nonce.next_nonce(key.api_key),
    )
    for _ in range(25):
        other.request("POST", "/0/private/Balance")
    with pytest.raises(errors.RateLimitError) as info:
        kraken_private(key, "Balance", idempotent=False)
    assert info.value.code == "EAPI:Rate limit exceeded"
    rest = ratelimit.charges_for(api_key=key.api_key, tier="pro", method="Balance", params={})
    assert ratelimit.peek(rest) > 0
    # The next read waits for the budget the model now knows about, and succeeds.
    assert "ZUSD" in kraken_private(key, "Balance")


def test_eservice_unavailable_on_every_attempt_is_service_unavailable(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    kraken_sandbox.set_faults([{"kind": "unavailable", "endpoint": "Balance"}])
    with pytest.raises(errors.ServiceUnavailableError) as info:
        kraken_private(key, "Balance")
    assert info.value.code == "EService:Unavailable"


def test_a_cloudflare_page_is_service_unavailable(make_key: MakeKey, kraken_sandbox: Any) -> None:
    key = make_key()
    kraken_sandbox.set_faults([{"kind": "http_5xx", "endpoint": "Balance", "status": 520}])
    with pytest.raises(errors.ServiceUnavailableError) as info:
        kraken_private(key, "Balance")
    assert info.value.http_status == 520


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_5xx", "status": 502},
        {"kind": "busy"},
        {"kind": "unavailable"},
        {"kind": "lost_response", "mode": "drop"},
    ],
)
def test_reads_retry_through_transient_failures(
    make_key: MakeKey, kraken_sandbox: Any, fault: dict[str, Any]
) -> None:
    key = make_key()
    # Two failed attempts in a row, then the third succeeds.
    kraken_sandbox.set_faults([{**fault, "endpoint": "Balance", "count": 2}])
    assert "ZUSD" in kraken_private(key, "Balance")
    (rule,) = kraken_sandbox.control("GET", "/sandbox/faults")["rules"]
    assert rule["count"] == 0


def test_public_reads_retry_through_a_transient_5xx(kraken_sandbox: Any) -> None:
    kraken_sandbox.set_faults([{"kind": "http_5xx", "endpoint": "Time", "count": 2}])
    assert "unixtime" in kraken_public("Time")


@pytest.mark.parametrize("mode", ["drop", "5xx"])
def test_a_lost_add_order_answer_is_an_unknown_outcome_and_is_not_retried(
    make_key: MakeKey, kraken_sandbox: Any, mode: str
) -> None:
    key = make_key()
    price = low_price()
    kraken_sandbox.set_faults(
        [{"kind": "lost_response", "endpoint": "AddOrder", "mode": mode, "status": 502}]
    )
    with pytest.raises(errors.UnknownOutcomeError) as info:
        kraken_private(
            key, "AddOrder", {**ORDER, "price": price, "cl_ord_id": "desk-42"}, operation=OP
        )
    assert info.value.reference == "cl_ord_id=desk-42"
    assert "not retried" in str(info.value)
    kraken_sandbox.set_faults([])
    # Kraken did place it, exactly once; the caller can find it by its cl_ord_id.
    assert len(open_orders(kraken_sandbox, key)) == 1
    found = kraken_private(key, "OpenOrders", {"cl_ord_id": "desk-42"})
    assert len(found["open"]) == 1


def test_a_5xx_before_an_order_is_processed_is_still_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    price = low_price()
    kraken_sandbox.set_faults([{"kind": "http_5xx", "endpoint": "AddOrder", "status": 502}])
    with pytest.raises(errors.UnknownOutcomeError):
        kraken_private(key, "AddOrder", {**ORDER, "price": price}, operation=OP)
    kraken_sandbox.set_faults([])
    assert open_orders(kraken_sandbox, key) == []


def test_a_timeout_on_an_order_is_an_unknown_outcome(
    make_key: MakeKey, kraken_sandbox: Any, settings: Any
) -> None:
    key = make_key()
    price = low_price()
    settings.KRAKEN_HTTP_TIMEOUT = 1
    kraken_sandbox.set_faults([{"kind": "latency", "endpoint": "AddOrder", "latency_ms": 1500}])
    with pytest.raises(errors.UnknownOutcomeError) as info:
        kraken_private(key, "AddOrder", {**ORDER, "price": price}, operation=OP)
    assert "timeout" in str(info.value)


def test_a_market_in_cancel_only_mode_is_not_retried(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    price = low_price()
    kraken_sandbox.set_status("cancel_only")
    try:
        with pytest.raises(errors.ServiceUnavailableError) as info:
            kraken_private(key, "AddOrder", {**ORDER, "price": price}, operation=OP)
    finally:
        kraken_sandbox.set_status("online")
    assert info.value.code == "EService:Market in cancel_only mode"
    assert not info.value.transient


def test_cancelling_an_unknown_order_is_an_unknown_order_error(make_key: MakeKey) -> None:
    key = make_key()
    with pytest.raises(errors.UnknownOrderError):
        kraken_private(key, "CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"}, operation=OP)


def test_a_key_with_an_api_password_sends_it(make_key: MakeKey, kraken_sandbox: Any) -> None:
    account = kraken_sandbox.create_account({"USD": "5"}, tier="pro")
    api_key, secret = kraken_sandbox.create_key(account, otp="desk-password")
    with_otp = KrakenKey(key_id="o", api_key=api_key, secret=secret, otp="desk-password")
    assert "ZUSD" in kraken_private(with_otp, "Balance")
    without = KrakenKey(key_id="o", api_key=api_key, secret=secret)
    with pytest.raises(errors.AuthenticationError):
        kraken_private(without, "Balance")


def test_a_lost_cancel_answer_is_an_unknown_outcome_too(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key()
    placed = kraken_private(
        key, "AddOrder", {**ORDER, "price": low_price(), "userref": 7}, operation=OP
    )
    kraken_sandbox.set_faults([{"kind": "lost_response", "endpoint": "CancelOrder", "mode": "5xx"}])
    with pytest.raises(errors.UnknownOutcomeError) as info:
        kraken_private(key, "CancelOrder", {"txid": placed["txid"][0]}, operation=OP)
    assert info.value.reference == f"txid={placed['txid'][0]}"
    kraken_sandbox.set_faults([])
    assert open_orders(kraken_sandbox, key) == []


def test_a_websocket_token_comes_from_the_private_api(make_key: MakeKey) -> None:
    assert websocket_token(make_key())


def test_without_redis_nothing_is_sent(
    make_key: MakeKey, kraken_sandbox: Any, settings: Any
) -> None:
    key = make_key()
    settings.KRAKEN_REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(errors.ServiceUnavailableError) as info:
        kraken_private(key, "AddOrder", {**ORDER, "price": "1000"}, operation=OP)
    assert "not sent" in str(info.value)
    settings.KRAKEN_REDIS_URL = ""
    assert open_orders(kraken_sandbox, key) == []
