"""In Chromium: the markets overview as a sortable, searchable table that holds while live."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from apps.orgs.models import Membership
from tests.market.conftest import feeder_subprocess
from tests.market.test_browser import _signed_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
PAIRS = ["BTC/USD", "ETH/USD", "SOL/USD", "ADA/USD", "ETH/BTC"]

# Counts the live batches that carried table rows (each is a swap of row fragments).
COUNT_ROW_UPDATES = """
window.rowUpdates = 0;
document.addEventListener('htmx:wsAfterMessage', function (e) {
  if (String(e.detail.message).indexOf('id="row-') >= 0) window.rowUpdates += 1;
});
"""


@pytest.fixture
def five_pair_feeder(sandbox: Any, market_redis: None) -> Iterator[Any]:
    with feeder_subprocess(sandbox, PAIRS) as process:
        yield process


def _visible_rows(page: Any) -> list[dict[str, str]]:
    result: list[dict[str, str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-market-table] tbody'))
            .filter(b => !b.hidden)
            .map(b => ({pair: b.dataset.pair,
                        last: b.querySelector('tr').getAttribute('data-k-last')}))"""
    )
    return result


def test_sorting_and_search_hold_while_live_prices_update(
    page: Any, portal_server: Any, viewer: Membership, five_pair_feeder: Any
) -> None:
    page.add_init_script(COUNT_ROW_UPDATES)
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")

    page.get_by_role("button", name="Table").click()
    page.wait_for_selector("[data-market-table]", state="visible")
    page.get_by_label("Search pairs").fill("USD")
    page.get_by_role("link", name="Last", exact=True).click()  # highest price first

    header = page.locator("th:has(a[data-sort-key='last'])")
    assert header.get_attribute("aria-sort") == "descending"
    start = page.evaluate("() => window.rowUpdates")
    page.wait_for_function(f"() => window.rowUpdates >= {start + 3}", timeout=30_000)

    rows = _visible_rows(page)
    # The filter still holds: ETH/BTC stays hidden, the four USD pairs are shown...
    assert sorted(row["pair"] for row in rows) == ["ADA/USD", "BTC/USD", "ETH/USD", "SOL/USD"]
    # ...in the chosen order, by the values the rows carry now (after the updates).
    lasts = [Decimal(row["last"]) for row in rows]
    assert lasts == sorted(lasts, reverse=True)
    assert [row["pair"] for row in rows][:2] == ["BTC/USD", "ETH/USD"]
    assert header.get_attribute("aria-sort") == "descending"
    assert page.get_by_label("Search pairs").input_value() == "USD"
    # The address keeps the choice, so a reload or a shared link shows the same.
    assert "sort=last" in page.url
    assert "q=USD" in page.url
    # Every live row was rendered with hx-disable: fragments cannot carry htmx behaviour.
    assert page.locator("[data-market-table] tr[id^='row-']:not([hx-disable])").count() == 0
    assert page.console_errors == []


def test_the_table_layout_is_remembered_for_the_person(
    page: Any, portal_server: Any, viewer: Membership, five_pair_feeder: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    with page.expect_response(lambda response: "/layout/" in response.url) as posted:
        page.get_by_role("button", name="Table").click()
    assert posted.value.status == 204
    page.wait_for_selector("[data-market-table]", state="visible")

    page.goto("/o/acme/markets/")
    assert page.locator("[data-market-table]").is_visible()
    assert page.locator(".tiles").is_hidden()
    assert page.get_by_role("button", name="Table").get_attribute("aria-pressed") == "true"
    assert page.console_errors == []
