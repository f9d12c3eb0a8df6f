"""In Chromium: focus survives live updates, and the feed status page updates while watched."""

from __future__ import annotations

from typing import Any

import pytest

from apps.orgs.models import Membership
from tests.market.test_browser import _signed_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# After each live batch that replaced `window.watched`, record whether focus is still on it
# (by id, or on the same control inside it) once the page has handled the batch.
WATCH_FOCUS = """
window.focusChecks = [];
document.addEventListener('htmx:wsAfterMessage', function (e) {
  if (!window.watched) return;
  if (String(e.detail.message).indexOf('id="' + window.watched + '"') < 0) return;
  // After every listener of this message has run (the page's own come after this one).
  queueMicrotask(function () {
    var active = document.activeElement;
    var holder = active && (active.id ? active : active.closest('[id]'));
    window.focusChecks.push(holder ? holder.id : String(active && active.tagName));
  });
});
"""


def _wait_for_replacements(page: Any, element_id: str, count: int = 10) -> list[str]:
    page.evaluate(f"() => {{ window.focusChecks = []; window.watched = '{element_id}'; }}")
    page.wait_for_function(f"() => window.focusChecks.length >= {count}", timeout=60_000)
    checks: list[str] = page.evaluate("() => window.focusChecks")
    return checks


def test_a_focused_tile_and_a_focused_row_keep_focus_across_ten_live_updates(
    page: Any, portal_server: Any, viewer: Membership, feeder_process: Any
) -> None:
    page.add_init_script(WATCH_FOCUS)
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    page.wait_for_selector("[data-market-conn]:has-text('Live')")

    page.locator("#tile-BTC-USD").focus()
    checks = _wait_for_replacements(page, "tile-BTC-USD")
    assert checks[:10] == ["tile-BTC-USD"] * 10
    # A key press still acts on the tile that was replaced ten times: Enter opens its pair.
    page.keyboard.press("Enter")
    page.wait_for_url("**/markets/BTC-USD/")

    page.goto("/o/acme/markets/")
    page.get_by_role("button", name="Table").click()
    page.locator("#row-ETH-USD a").focus()
    checks = _wait_for_replacements(page, "row-ETH-USD")
    assert checks[:10] == ["row-ETH-USD"] * 10
    assert page.evaluate("() => document.activeElement.textContent") == "ETH/USD"
    assert page.console_errors == []


def test_the_feed_status_page_ticks_and_counts_reconnects_while_open(
    page: Any, portal_server: Any, viewer: Membership, sandbox: Any, feeder_process: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/status/")
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    reconnects = page.locator("[data-reconnects]")
    before = int(reconnects.inner_text())

    sandbox.set_faults(ws_disconnect_every=1)
    try:
        page.wait_for_function(
            f"() => Number(document.querySelector('[data-reconnects]').innerText) > {before}",
            timeout=30_000,
        )
    finally:
        sandbox.clear_faults()

    # With the feeder gone, the heartbeat's age keeps rising on the open page.
    feeder_process.terminate()
    feeder_process.wait(timeout=10)
    page.wait_for_function(
        "() => parseFloat(document.querySelector('[data-heartbeat-age]').innerText) >= 3",
        timeout=20_000,
    )
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"  # never reloaded
    assert page.console_errors == []
