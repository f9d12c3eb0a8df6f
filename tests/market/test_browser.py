"""In Chromium: market tiles, the order book and the candle chart change without a reload."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse

from apps.market.store import loads, state_key
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from tests.conftest import verified_client

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def portal_server_env() -> dict[str, str]:
    # Pages here call the feed stale after 4 s of silence instead of 15, so a test can see it.
    return {"MARKET_STALE_AFTER": "4"}


def _signed_in(page: Any, member: Membership, server_url: str) -> Client:
    """Signs the browser in; the returned client shares its session (another tab)."""
    client = verified_client(member.user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server_url}]
    )
    return client


def _in_thread[T](fn: Callable[[], T]) -> T:
    """Run `fn` in a thread of its own, as a view runs. Playwright's sync API keeps an event
    loop in the test's thread, where publishing to sockets (async_to_sync) refuses to run."""

    def run() -> T:
        try:
            return fn()
        finally:
            connections.close_all()  # the thread's own connection, or the test database stays

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _mid(symbol: str) -> Decimal:
    state = loads(redis.Redis.from_url(settings.REDIS_URL).get(state_key(symbol)))
    return (Decimal(state["ticker"]["bid"]) + Decimal(state["ticker"]["ask"])) / 2


def test_a_price_tile_changes_without_reload_when_the_market_moves(
    page: Any, portal_server: Any, viewer: Membership, sandbox: Any, feeder_process: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    tile = page.locator("#tile-BTC-USD .tile-quote")
    before = tile.inner_text()
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    target = (_mid("BTC/USD") * Decimal("1.05")).quantize(Decimal("0.1"))
    sandbox.move_price("BTC/USD", str(target))
    # Swaps replace the element (outerHTML), so look it up afresh each time.
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).innerText !== before",
        arg=["#tile-BTC-USD .tile-quote", before],
        timeout=15_000,
    )
    # The page was never reloaded, and nothing broke the strict CSP.
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"
    assert page.console_errors == []


def test_the_ladder_and_the_live_candle_update_on_the_pair_page(
    page: Any, portal_server: Any, viewer: Membership, sandbox: Any, feeder_process: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/BTC-USD/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert int(page.get_attribute("#chart", "data-points") or 0) > 0  # history drawn
    page.wait_for_selector("#chart canvas", state="attached")
    best_bid = page.locator("#ladder-BTC-USD tbody.bids tr").first
    before = best_bid.inner_text()
    target = (_mid("BTC/USD") * Decimal("0.95")).quantize(Decimal("0.1"))
    sandbox.move_price("BTC/USD", str(target))
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).innerText !== before",
        arg=["#ladder-BTC-USD tbody.bids tr", before],
        timeout=15_000,
    )
    # The live candle reached the chart: its close follows the market to the new price.
    page.wait_for_function(
        "(target) => Math.abs(Number(document.getElementById('chart').dataset.last) - target)"
        " / target < 0.02",
        arg=float(target),
        timeout=20_000,
    )
    assert page.locator("#ladder-BTC-USD tbody.bids tr").count() == 25
    assert page.console_errors == []


def test_signing_out_in_another_tab_ends_the_live_page_and_says_so(
    page: Any, portal_server: Any, viewer: Membership, feeder_process: Any
) -> None:
    other_tab = _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")

    assert _in_thread(lambda: other_tab.post(reverse("accounts:logout"))).status_code == 302

    # Prices stop, and the badge says why instead of "reconnecting" for ever.
    page.wait_for_selector("[data-market-conn]:has-text('Signed out')", timeout=15_000)
    assert page.console_errors == []


def test_a_role_change_reconnects_the_live_page_for_the_new_role(
    page: Any, portal_server: Any, owner: Membership, viewer: Membership, feeder_process: Any
) -> None:
    page.add_init_script(
        "window.wsOpens = 0;"
        # The market's own socket (the header has another, for the member's private parts).
        "document.addEventListener('htmx:wsOpen', function (e) {"
        " if (e.target.closest('[data-market-live]')) window.wsOpens += 1; });"
    )
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert page.evaluate("() => window.wsOpens") == 1

    _in_thread(
        lambda: memberships.membership_change_role(membership=viewer, role=Role.TRADER, actor=owner)
    )

    # The server closed the socket (authorised for the old role); htmx opened a new one.
    page.wait_for_function("() => window.wsOpens >= 2", timeout=20_000)
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert page.console_errors == []


def test_the_page_turns_stale_when_the_feed_stops(
    page: Any, portal_server: Any, viewer: Membership, feeder_process: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert page.locator("#tile-BTC-USD.is-stale").count() == 0

    feeder_process.terminate()  # Kraken's data stops reaching the portal
    feeder_process.wait(timeout=10)

    page.wait_for_selector("[data-market-conn]:has-text('Stale')", timeout=15_000)
    page.wait_for_selector("#tile-BTC-USD.is-stale", timeout=5_000)
    # The socket itself is fine: the page says the data is old, not that it is disconnected.
    assert page.locator("[data-market-conn]:has-text('Disconnected')").count() == 0
    assert page.console_errors == []
