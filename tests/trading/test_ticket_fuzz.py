"""No input breaks the ticket or gets past its rules: hypothesis over the form (the views
answer 200/302/422, never a 500) and over the submit service (it refuses, or the order it sends
obeys the pair's rules), against the real sandbox."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.exchange.models import Kind, Operation
from apps.kraken.models import AssetPair
from apps.orgs.models import Membership
from apps.trading import services
from apps.trading.models import OrderType
from apps.trading.rules import LIMIT_PRICED, Ticket
from tests.trading.conftest import TradingDesk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]

HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
numbers = st.one_of(
    st.sampled_from(["", "0", "-1", "0.01", "0.0001", "1000", "1000.5", "+5", "-5%", "1e9"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=30),
)
choices = {
    "side": st.sampled_from(["buy", "sell", "", "hold"]),
    "order_type": st.sampled_from([*OrderType.values, "", "stop"]),
    "quantity_in": st.sampled_from(["base", "quote", "x"]),
    "time_in_force": st.sampled_from(["GTC", "IOC", "FOK", "GTD", "", "DAY"]),
    "trigger": st.sampled_from(["", "last", "index", "mark"]),
    "fee_currency": st.sampled_from(["", "base", "quote", "usd"]),
    "close_order_type": st.sampled_from(["", "limit", "stop-loss", "market"]),
    "post_only": st.sampled_from(["", "on"]),
    "confirmed": st.sampled_from(["", "on"]),
    "pair": st.sampled_from(["BTC/USD", "ETH/USD", "XBTUSD", "NOPE/USD", ""]),
    "expires_at": st.sampled_from(["", "2099-01-01T10:00", "2001-01-01T10:00", "tomorrow"]),
}
numeric_fields = ["quantity", "price", "price2", "display_volume", "close_price", "close_price2"]
form_data = st.fixed_dictionaries(
    {},
    optional={**choices, **dict.fromkeys(numeric_fields, numbers), "account": st.text(max_size=5)},
)


def _sent_orders_obey_the_rules() -> None:
    """Every AddOrder that left (validate-only ones aside) passes the pair's rules."""
    for operation in Operation.objects.filter(kind=Kind.ADD_ORDER, validate_only=False):
        params = operation.params
        pair = AssetPair.objects.get(altname=params["pair"])
        assert params["type"] in ("buy", "sell")
        assert params["ordertype"] in OrderType.values
        volume = Decimal(params["volume"])
        assert volume > 0
        if "viqc" not in params.get("oflags", ""):
            assert volume >= pair.ordermin
            assert volume == volume.quantize(Decimal(1).scaleb(-pair.lot_decimals))
        else:
            assert params["ordertype"] == "market"
            assert params["type"] == "buy"
        if "price" in params and not str(params["price"]).startswith("+"):
            price = Decimal(params["price"])
            assert price > 0
            if pair.tick_size:
                assert price % pair.tick_size == 0
        if "post" in params.get("oflags", ""):
            assert params["ordertype"] in LIMIT_PRICED
            assert params.get("timeinforce", "GTC") in ("GTC", "GTD")
        if params["ordertype"] == "market":
            assert "price" not in params


@HYPOTHESIS
@given(data=form_data, send=st.booleans())
def test_the_ticket_survives_any_input_and_sends_only_what_the_rules_allow(
    data: dict[str, str],
    send: bool,
    trading_desk: TradingDesk,
    trader: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    data = dict(data)
    data.setdefault("account", str(trading_desk.account.pk))
    client = client_for(trader)
    name = "trading:order-submit" if send else "trading:ticket-check"
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post(
            reverse(name, kwargs={"org": trader.org.slug}), data, headers=headers
        )
        assert response.status_code in {200, 302, 422}, (response.status_code, data)
    _sent_orders_obey_the_rules()


decimals = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("0.01"), Decimal("0.00000001"), Decimal("1E+30"), Decimal("-0")]),
)


@HYPOTHESIS
@given(
    side=choices["side"],
    order_type=choices["order_type"],
    quantity=decimals,
    quantity_in=choices["quantity_in"],
    price=numbers,
    price2=numbers,
    tif=choices["time_in_force"],
    post_only=st.booleans(),
    display=decimals,
    close_type=choices["close_order_type"],
    close_price=numbers,
)
def test_the_submit_service_refuses_or_sends_a_valid_order(
    side: str,
    order_type: str,
    quantity: Decimal | None,
    quantity_in: str,
    price: str,
    price2: str,
    tif: str,
    post_only: bool,
    display: Decimal | None,
    close_type: str,
    close_price: str,
    trading_desk: TradingDesk,
    trader: Membership,
) -> None:
    ticket = Ticket(
        account=trading_desk.account,
        pair="BTC/USD",
        side=side,
        order_type=order_type,
        quantity=quantity,
        quantity_in=quantity_in,
        price=price,
        price2=price2,
        time_in_force=tif,
        post_only=post_only,
        display_volume=display,
        close_order_type=close_type,
        close_price=close_price,
        confirmed=True,
    )
    refusal: services.OrderRefused | None = None
    try:
        services.order_submit(membership=trader, ticket=ticket)
    except services.OrderRefused as refused:
        refusal = refused
    assert refusal is None or refusal.check.errors
    _sent_orders_obey_the_rules()


def test_the_rules_hold_for_the_orders_above(trading_desk: TradingDesk, trader: Any) -> None:
    """The property the fuzzers check, on an order known to pass, so that it cannot be
    vacuous: a valid order is sent and obeys it."""
    ticket = Ticket(
        account=trading_desk.account,
        pair="BTC/USD",
        side="buy",
        order_type="limit",
        quantity=Decimal("0.01"),
        price="1000",
        confirmed=True,
    )
    services.order_submit(membership=trader, ticket=ticket)
    assert Operation.objects.filter(kind=Kind.ADD_ORDER).count() == 1
    _sent_orders_obey_the_rules()
