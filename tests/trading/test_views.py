"""The desk's pages: the ticket works without JavaScript (review, then a separate send), with
htmx it checks as the trader types; refusals are shown next to their fields; the market pair
page carries the ticket; other organizations' orders are 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.orgs.models import Membership
from apps.trading import rules, services
from apps.trading.models import Order, OrderState
from tests.trading.conftest import TradingDesk, limit_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def ticket_data(desk: TradingDesk, **changes: str) -> dict[str, str]:
    data = {
        "account": str(desk.account.pk),
        "pair": "BTC/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "0.01",
        "quantity_in": "base",
        "price": "1000",
        "time_in_force": "GTC",
        "fee_currency": "",
    }
    data.update(changes)
    return data


def url(name: str, membership: Membership, **kwargs: Any) -> str:
    return reverse(f"trading:{name}", kwargs={"org": membership.org.slug, **kwargs})


def test_the_desk_shows_the_ticket_to_a_trader_and_not_to_a_viewer(
    trading_desk: TradingDesk,
    trader: Membership,
    viewer: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    page = client_for(trader).get(url("desk", trader)).content.decode()
    assert 'id="ticket-form"' in page
    assert "Send order" in page
    assert 'for="id_quantity"' in page  # every field has a visible label

    page = client_for(viewer).get(url("desk", viewer)).content.decode()
    assert 'id="ticket-form"' not in page
    assert "does not allow trading" in page


def test_the_ticket_checks_as_the_trader_types_and_shows_the_estimate(
    trading_desk: TradingDesk,
    trader: Membership,
    client_for: Callable[[Membership], Client],
    market_keys: Any,
) -> None:
    market_keys.book(
        "BTC/USD", last="2000", bids=[("1999", "1")], asks=[("2001", "0.5"), ("2002", "1")]
    )
    client = client_for(trader)

    response = client.post(
        url("ticket-check", trader),
        ticket_data(trading_desk, order_type="market", price="", quantity="1"),
        headers={"HX-Request": "true"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="ticket-feedback"' in html
    # 0.5 at 2001 and 0.5 at 2002: 2001.5 on average, 2001.5 USD in all.
    assert "2001.5 USD" in html
    assert "data-avg>2001.5<" in html
    assert "Ready to send." in html

    response = client.post(
        url("ticket-check", trader),
        ticket_data(trading_desk, price="abc"),
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert rules.PRICE_INVALID in html
    assert 'id="ticket-err-price" class="errorlist" hx-swap-oob="true"' in html


def test_without_javascript_review_then_send_places_the_order(
    trading_desk: TradingDesk, trader: Membership, client_for: Callable[[Membership], Client]
) -> None:
    client = client_for(trader)

    review = client.post(url("ticket-check", trader), ticket_data(trading_desk))
    assert review.status_code == 200
    assert Order.objects.count() == 0  # reviewing never sends

    sent = client.post(url("order-submit", trader), ticket_data(trading_desk))

    assert sent.status_code == 302
    order = Order.objects.get()
    assert order.state == OrderState.OPEN
    page = client.get(sent["Location"]).content.decode()
    assert f"Order #{order.pk} submitted" in page


def test_one_ticket_sent_twice_or_at_once_places_one_order(
    trading_desk: TradingDesk,
    trader: Membership,
    client_for: Callable[[Membership], Client],
    exchange_sandbox: Any,
) -> None:
    """A double click, a key held down or a repeated POST: one order, sent to Kraken once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from apps.exchange.models import Kind, Operation

    client = client_for(trader)
    page = client.get(url("desk", trader)).content.decode()
    drawn = re.search(r'name="submission" value="([0-9a-f]{32})"', page)
    assert drawn is not None  # the ticket carries its own id
    data = ticket_data(trading_desk, submission=drawn.group(1))

    def send(_: int) -> int:
        try:
            response = client_for(trader).post(
                url("order-submit", trader), data, headers={"HX-Request": "true"}
            )
            return response.status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(send, range(2))) == [200, 200]
    again = client.post(url("order-submit", trader), data, headers={"HX-Request": "true"})

    order = Order.objects.get()
    assert Operation.objects.filter(kind=Kind.ADD_ORDER).count() == 1
    assert len(trading_desk.look(exchange_sandbox, "OpenOrders")["open"]) == 1
    html = again.content.decode()
    assert f"This ticket was already sent as order #{order.pk}" in html
    # The fresh ticket it answers with is a new one: its next order is another order.
    fresh = re.search(r'name="submission" value="([0-9a-f]{32})"', html)
    assert fresh is not None
    assert fresh.group(1) != drawn.group(1)
    client.post(url("order-submit", trader), ticket_data(trading_desk, submission=fresh.group(1)))
    assert Order.objects.count() == 2


def test_a_refused_order_shows_the_reason_next_to_its_field(
    trading_desk: TradingDesk, trader: Membership, client_for: Callable[[Membership], Client]
) -> None:
    response = client_for(trader).post(
        url("order-submit", trader), ticket_data(trading_desk, quantity="-1")
    )

    assert response.status_code == 422
    assert rules.QUANTITY_REQUIRED in response.content.decode()
    assert not Order.objects.exists()


def test_the_market_pair_page_carries_the_ticket(
    trading_desk: TradingDesk,
    trader: Membership,
    client_for: Callable[[Membership], Client],
    market_keys: Any,
) -> None:
    import redis
    from django.conf import settings

    from apps.market.store import PAIRS_KEY, dumps

    redis.Redis.from_url(settings.REDIS_URL).set(
        PAIRS_KEY, dumps([{"symbol": "BTC/USD", "price_decimals": 1, "qty_decimals": 8}])
    )

    page = client_for(trader).get(
        reverse("market:pair", kwargs={"org": trader.org.slug, "symbol": "BTC-USD"})
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="ticket-form"' in html
    assert "Order ticket · BTC/USD" in html


def test_another_organizations_order_is_not_found(
    trading_desk: TradingDesk,
    trader: Membership,
    outsider: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))

    response = client_for(outsider).get(
        reverse("trading:order-detail", kwargs={"org": outsider.org.slug, "pk": order.pk})
    )

    assert response.status_code == 404


def test_the_order_page_shows_who_placed_it_with_which_key_and_its_history(
    trading_desk: TradingDesk,
    trader: Membership,
    viewer: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))

    html = client_for(viewer).get(url("order-detail", viewer, pk=order.pk)).content.decode()

    assert trader.user.email in html
    assert trading_desk.credential.label in html
    assert "Placed on Kraken" in html
    assert "Amend order" not in html  # not the viewer's order


def test_the_kill_switch_page_halts_trading_after_a_step_up(
    trading_desk: TradingDesk,
    owner: Membership,
    trader: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    client = client_for(owner)
    stale = client.post(url("kill-switch", owner), {"confirm": "on"})
    assert stale.status_code == 302
    assert reverse("accounts:step-up") in stale["Location"]

    from apps.accounts.services import STEP_UP_SESSION_KEY

    session = client.session
    import time

    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    response = client.post(url("kill-switch", owner), {"confirm": "on", "cancel_all": "on"})

    assert response.status_code == 302
    page = client_for(trader).get(url("desk", trader)).content.decode()
    assert 'data-halted="true"' in page
    assert "Trading is halted" in page
