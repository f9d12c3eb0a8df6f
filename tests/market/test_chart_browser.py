"""In Chromium: the candle chart's axes as drawn (pair decimals, separators, the member's zone),
the interval picker, the depth chart, and the trade tape's times in the member's zone."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apps.orgs.models import Membership
from tests.market.conftest import feeder_subprocess
from tests.market.test_browser import _signed_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
PAIRS = ["BTC/USD", "USDT/USD", "ADA/USD"]
PRICE = re.compile(r"^[\d,]+\.\d+$")
CLOCK = re.compile(r"^\d{2}:\d{2}$")

# Every string the page draws on a canvas: the chart's axis labels as rendered.
CAPTURE_CANVAS_TEXT = """
window.drawnText = [];
const original = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, maxWidth) {
  window.drawnText.push(String(text));
  return original.apply(this, arguments);
};
"""


@pytest.fixture
def three_pair_feeder(sandbox: Any, market_redis: None) -> Iterator[Any]:
    with feeder_subprocess(sandbox, PAIRS) as process:
        yield process


def _far_zone() -> str:
    """A zone hours away from UTC whose clock is nowhere near midnight now, so a label in UTC
    could not pass for one in the zone."""
    now = datetime.now(UTC)
    for name in ("Asia/Kathmandu", "America/New_York", "Pacific/Auckland", "Asia/Tokyo"):
        local = now.astimezone(ZoneInfo(name))
        offset = abs(local.utcoffset() or timedelta())
        if offset >= timedelta(hours=4) and 2 <= local.hour <= 21:
            return name
    raise AssertionError("no suitable zone")  # pragma: no cover: one of four always fits


def _exchange_decimals() -> dict[str, int]:
    from apps.sandbox.pairs import PAIRS as EXCHANGE_PAIRS

    decimals = {p.symbol: p.pair_decimals for p in EXCHANGE_PAIRS.values() if p.symbol in PAIRS}
    assert decimals["ADA/USD"] == 6  # the example: 0.447916
    return decimals


def _drawn(page: Any) -> list[str]:
    texts: list[str] = page.evaluate("() => window.drawnText")
    return texts


def _axis_prices(page: Any) -> list[str]:
    page.wait_for_function(
        "() => window.drawnText.some(t => /^[\\d,]+\\.\\d+$/.test(t))", timeout=15_000
    )
    return [text for text in _drawn(page) if PRICE.match(text)]


def test_the_price_axis_uses_the_pairs_decimals_and_thousands_separators(
    page: Any, portal_server: Any, viewer: Membership, three_pair_feeder: Any
) -> None:
    page.add_init_script(CAPTURE_CANVAS_TEXT)
    _signed_in(page, viewer, portal_server.url)

    # The exchange's own pair_decimals (the sandbox's AssetPairs): USDT/USD 5, ADA/USD 6.
    for symbol, places in _exchange_decimals().items():
        page.goto(f"/o/acme/markets/{symbol.replace('/', '-')}/")
        prices = _axis_prices(page)
        # 1.00010 and 0.447916, not 1.00 and 0.45 (the chart's default of two decimals).
        assert all(len(text.split(".")[1]) == places for text in prices), (symbol, prices)
        if symbol == "BTC/USD":
            assert all("," in text for text in prices), prices  # 65,000.0
        page.evaluate("() => { window.drawnText = []; }")
    assert page.console_errors == []


def test_times_on_the_chart_and_the_tape_are_in_the_members_zone_and_say_so(
    page: Any, portal_server: Any, viewer: Membership, three_pair_feeder: Any
) -> None:
    zone = _far_zone()
    viewer.user.time_zone = zone
    viewer.user.save(update_fields=["time_zone"])
    page.add_init_script(CAPTURE_CANVAS_TEXT)
    _signed_in(page, viewer, portal_server.url)

    page.goto("/o/acme/markets/BTC-USD/")
    page.wait_for_function(
        "() => window.drawnText.some(t => /^\\d{2}:\\d{2}$/.test(t))", timeout=15_000
    )
    local_now = datetime.now(ZoneInfo(zone))

    def on_the_clock(text: str) -> datetime:
        # A tick's date is not drawn: one later than now in the day is yesterday's (the chart's
        # hours cross the zone's midnight when the test runs just after it).
        at = local_now.replace(hour=int(text[:2]), minute=int(text[3:]), second=0, microsecond=0)
        return at - timedelta(days=1) if at > local_now + timedelta(minutes=5) else at

    clocks = [on_the_clock(t) for t in _drawn(page) if CLOCK.match(t)]
    # The newest tick is within the last hours of the zone's clock (UTC would be 4+ h away).
    newest = max(clocks)
    assert local_now - timedelta(hours=3) <= newest <= local_now + timedelta(minutes=5), (
        zone,
        clocks,
    )
    assert page.locator(".chart-zone").inner_text() == f"Times in {zone}"

    # The tape: its heading names the zone, and each time is the trade's instant there.
    assert page.locator("[data-zone-label]").first.inner_text() == f"({zone})"
    first = page.locator("#trades-BTC-USD time").first
    instant = datetime.fromisoformat(first.get_attribute("datetime").replace("Z", "+00:00"))
    assert first.inner_text() == instant.astimezone(ZoneInfo(zone)).strftime("%H:%M:%S")
    assert page.console_errors == []


def test_the_interval_picker_redraws_the_chart_in_longer_candles(
    page: Any, portal_server: Any, viewer: Membership, three_pair_feeder: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/BTC-USD/")
    page.wait_for_selector("#chart canvas", state="attached")
    one_minute = int(page.get_attribute("#chart", "data-points") or 0)

    page.get_by_role("link", name="15m", exact=True).click()
    page.wait_for_url("**/BTC-USD/?interval=15")
    page.wait_for_selector("#chart canvas", state="attached")
    fifteen = int(page.get_attribute("#chart", "data-points") or 0)
    assert page.get_by_role("link", name="15m", exact=True).get_attribute("aria-current") == "true"
    assert page.locator("#chart-title").inner_text() == "15m candles"
    # Quarter hours: every candle starts on one, one or more quarter hours after the last.
    # (How many there are depends on how much history the exchange holds, not on the picker:
    # a sandbox whose clock earlier tests moved on holds more than twelve hours.)
    assert fifteen > 0
    times = [c["time"] for c in json.loads(page.locator("#candles-data").text_content() or "[]")]
    assert len(times) == fifteen
    assert all(t % 900 == 0 for t in times), times[:5]
    assert all(later - earlier >= 900 for earlier, later in itertools.pairwise(times))
    assert one_minute > 0

    for label in ("1m", "5m", "1h", "4h", "1d"):
        assert page.get_by_role("link", name=label, exact=True).count() == 1
    assert page.console_errors == []


def test_a_depth_chart_is_drawn_beside_the_ladder(
    page: Any, portal_server: Any, viewer: Membership, three_pair_feeder: Any
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/BTC-USD/")
    page.wait_for_selector("#depth-chart path.depth-bids", state="attached")
    page.wait_for_selector("#depth-chart path.depth-asks", state="attached")
    assert int(page.get_attribute("#depth-chart", "data-levels") or 0) == 50
    ladder = page.locator("#ladder-BTC-USD").bounding_box()
    depth = page.locator("#depth-chart").bounding_box()
    assert depth["x"] > ladder["x"] + ladder["width"] - 1  # beside, not below
    assert page.console_errors == []
