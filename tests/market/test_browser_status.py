"""In Chromium: Kraken's system status as a banner on market pages, and a pair's own status on
that pair, both live as the feeder publishes them; the badge never says "Live" in maintenance."""

from __future__ import annotations

from typing import Any

import pytest

from apps.orgs.models import Membership

# The same portal settings as the other market browser tests; feeder_process comes from
# tests/market/conftest.py.
from tests.market.test_browser import _signed_in, portal_server_env  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("feeder_process"),
]

# Every text the connection badge shows from now on (it is rewritten every two seconds).
RECORD_BADGE = """() => {
  const el = document.querySelector('[data-market-conn]');
  window.badgeTexts = [];
  new MutationObserver(() => window.badgeTexts.push(el.textContent))
    .observe(el, {childList: true, characterData: true, subtree: true});
}"""


def test_maintenance_shows_a_banner_and_the_badge_never_says_live_until_it_ends(
    page: Any, portal_server: Any, viewer: Membership, sandbox: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert page.locator("#exchange-status").is_hidden()

    sandbox.set_status("maintenance")
    try:
        page.wait_for_selector("#exchange-status:has-text('Maintenance')", timeout=15_000)
        page.wait_for_selector("[data-market-conn]:has-text('Maintenance')", timeout=5_000)
        page.evaluate(RECORD_BADGE)
        page.wait_for_function("() => window.badgeTexts.length >= 3", timeout=15_000)
        assert not [t for t in page.evaluate("window.badgeTexts") if "Live" in t]

        # A page opened during maintenance says so from its first render.
        page.goto("/o/acme/markets/BTC-USD/")
        assert page.locator("#exchange-status").is_visible()
        assert "Live" not in page.locator("[data-market-conn]").inner_text()
        page.wait_for_selector("[data-market-conn]:has-text('Maintenance')", timeout=10_000)
    finally:
        sandbox.set_status("online")

    page.wait_for_selector("#exchange-status", state="hidden", timeout=15_000)
    page.wait_for_selector("[data-market-conn]:has-text('Live')", timeout=10_000)
    assert page.console_errors == []


def test_a_pair_set_to_limit_only_shows_it_on_that_pair_live(
    page: Any, portal_server: Any, viewer: Membership, sandbox: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/ETH-USD/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")
    assert page.locator("#status-ETH-USD .badge").count() == 0

    sandbox.set_pair_status("ETH/USD", "limit_only")
    try:
        page.wait_for_selector("#status-ETH-USD:has-text('Limit only')", timeout=15_000)
        assert page.locator("#exchange-status").is_hidden()  # the exchange itself is online

        page.goto("/o/acme/markets/")
        page.wait_for_selector("[data-market-conn]:has-text('Live')")
        assert "Limit only" in page.locator("#tile-ETH-USD").inner_text()
        assert page.locator("#tile-BTC-USD .tile-status").count() == 0
        # The table view's row of the pair carries the same mark.
        assert "Limit only" in (page.locator("#row-ETH-USD th").text_content() or "")
        assert page.locator("#row-BTC-USD .tile-status").count() == 0
    finally:
        sandbox.set_pair_status("ETH/USD", "online")

    # Back online: the overview's tile drops the mark without a reload.
    page.wait_for_function(
        "() => !document.querySelector('#tile-ETH-USD .tile-status')", timeout=15_000
    )
    # The table's row (not sent to a page showing tiles) is brought up to date on switching.
    page.get_by_role("button", name="Table").click()
    page.wait_for_function(
        "() => !document.querySelector('#row-ETH-USD .tile-status')", timeout=15_000
    )
    assert page.locator("#row-ETH-USD").is_visible()
    assert page.console_errors == []
