"""Screenshots of the market pages at desk and phone widths, for people to look at.

Skipped unless UI_SCREENSHOTS names a folder (e.g. var/screens/after): it asserts nothing a
person would not see better in the pictures, so it does not run in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.market.conftest import feeder_subprocess

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not os.environ.get("UI_SCREENSHOTS"), reason="UI_SCREENSHOTS not set"),
]
PAIRS = ["BTC/USD", "ETH/USD", "USDT/USD", "ADA/USD", "EUR/USD", "SOL/USD"]
PAGES = {
    "markets": "/o/acme/markets/",
    "pair": "/o/acme/markets/BTC-USD/",
    "pair-ada": "/o/acme/markets/ADA-USD/",
    "members": "/o/acme/members/",
}


@pytest.fixture
def many_pairs_feeder(sandbox: Any, market_redis: None) -> Iterator[None]:
    with feeder_subprocess(sandbox, PAIRS):
        yield


@pytest.mark.parametrize("width", [1440, 390])
def test_take_screenshots(
    page: Any, portal_server: Any, owner: Membership, many_pairs_feeder: None, width: int
) -> None:
    folder = Path(os.environ["UI_SCREENSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    client = verified_client(owner.user)
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": portal_server.url,
            }
        ]
    )
    for name, url in PAGES.items():
        page.goto(url)
        time.sleep(3)  # let the live updates and the chart settle
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        if name == "markets" and page.locator("[data-layout-switch]").count():
            page.get_by_role("button", name="Table").click()
            time.sleep(1)
            page.screenshot(path=str(folder / f"{name}-table-{width}.png"), full_page=True)
            page.get_by_role("button", name="Tiles").click()
