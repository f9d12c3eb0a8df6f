"""The desk's panel on the home page (issue 14 §1): open orders, today's P&L and recent fills for
the roles that run or watch the desk, with an empty state that says what to do next; and the
live parts that refresh it, the blotters and the P&L, sent to the organization's members only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.urls import reverse

from apps.exchange.hooks import _hooks
from apps.exchange.models import Kind
from apps.exchange.streams import hooks as stream_hooks
from apps.trading.live_blotter import audience, render_parts
from tests.trading.blotter.conftest import DeskData

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("orgs:dashboard", kwargs={"org": "acme"})


def home(client: Client) -> str:
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_a_trader_sees_open_orders_todays_pnl_and_recent_fills(
    desk: DeskData, trader, client_for, prices
) -> None:
    prices.set("BTC/USD", "60000")
    now = datetime.now(tz=UTC)
    desk.order(by=trader, status="open", opened_at=now)
    buy = desk.order(by=trader, status="closed", opened_at=now)
    desk.fill(buy, qty="0.5", price="58000", at=now - timedelta(seconds=5))

    html = home(client_for(trader))

    assert 'data-testid="desk-panel"' in html
    assert 'data-testid="desk-open-orders">2<' not in html  # only open orders count
    assert 'data-testid="desk-open-orders">1<' in html
    assert "+1,000.00 USD" in html  # today's net: 0.5 x (60,000 - 58,000)
    assert "0.50000000 BTC/USD @ 58,000.0" in html


def test_with_no_fills_the_panel_says_what_to_do_next(desk, trader, viewer, client_for) -> None:
    assert "Place an order on the desk" in home(client_for(trader))
    assert "Fills of the organization's orders appear here" in home(client_for(viewer))


def test_without_an_account_it_asks_for_one(owner, client_for) -> None:
    assert "Add your Kraken account" in home(client_for(owner))


@pytest.mark.parametrize("role", ["treasurer", "approver"])
def test_treasurers_and_approvers_homes_lead_with_their_own_work(
    role, request, desk, client_for
) -> None:
    assert 'data-testid="desk-panel"' not in home(client_for(request.getfixturevalue(role)))


def test_the_panel_alone_for_its_live_refresh(desk, trader, client_for) -> None:
    response = client_for(trader).get(reverse("trading:desk-panel", kwargs={"org": "acme"}))
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="desk-panel"')


def test_the_live_parts_ask_each_reader_for_their_own_filtered_table(org) -> None:
    parts = dict(render_parts(org))
    assert set(parts) == {
        "blotter-live-open",
        "blotter-live-history",
        "blotter-live-fills",
        "pnl-live",
        "desk-panel-live",
    }
    fills = parts["blotter-live-fills"]
    assert 'hx-get="/o/acme/desk/blotter/fills/"' in fills
    assert 'hx-trigger="load"' in fills
    assert 'hx-include="#blotter-filters"' in fills


def test_live_parts_go_to_the_organizations_members_only(
    owner: Any, trader: Any, viewer: Any, outsider: Any
) -> None:
    assert set(audience(owner.org)) == {owner.user_id, trader.user_id, viewer.user_id}


def test_the_trading_app_makes_settled_order_operations_refresh_the_desk() -> None:
    saved = {kind: list(hooks) for kind, hooks in _hooks.items()}
    saved_streams = list(stream_hooks._hooks)
    _hooks.clear()  # another test module may have cleared them: start from none
    stream_hooks._hooks.clear()
    try:
        django_apps.get_app_config("trading").ready()
        for kind in (Kind.ADD_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL, Kind.AMEND_ORDER):
            # Among the trading app's hooks of the kind (the orders' outcomes, the kill switch's).
            modules = {h.on_done.__module__ for h in _hooks[kind] if h.on_done is not None}
            assert "apps.trading.live_blotter" in modules
        (streams,) = [
            h
            for h in stream_hooks._hooks
            if h.on_fill is not None and h.on_fill.__module__ == "apps.trading.live_blotter"
        ]
        assert streams.on_fill is not None
        assert streams.on_order is not None
        assert streams.on_fill.__module__ == "apps.trading.live_blotter"
        assert streams.on_balance is not None  # opening lots before the first fill
    finally:
        _hooks.clear()
        _hooks.update(saved)
        stream_hooks._hooks[:] = saved_streams
