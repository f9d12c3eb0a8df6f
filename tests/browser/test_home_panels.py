"""In Chromium: a trader's home shows the desk panel and the treasury panel, a treasurer's the
treasury panel and no desk (issue 14 §1); with no Kraken account yet each panel says what to do
next."""

from __future__ import annotations

from typing import Any

import pytest

from apps.orgs.models import Membership
from tests.browser.test_accessibility import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.mark.parametrize(("role", "sees_desk"), [("trader", True), ("treasurer", False)])
def test_a_trader_and_a_treasurer_see_their_panels_on_home(
    page: Any, portal_server: Any, role: str, sees_desk: bool, request: pytest.FixtureRequest
) -> None:
    member: Membership = request.getfixturevalue(role)
    _sign_in(page, member.user, portal_server.url)
    page.goto("/o/acme/")
    desk = page.get_by_test_id("desk-panel")
    treasury = page.get_by_test_id("treasury-panel")
    assert treasury.get_by_role("heading", name="Treasury").is_visible()
    assert treasury.get_by_role("link", name="Treasury →").is_visible()
    assert "No Kraken account yet" in treasury.locator("[data-empty=no-accounts]").inner_text()
    if not sees_desk:
        assert desk.count() == 0
        return
    assert desk.get_by_role("heading", name="Desk").is_visible()
    assert "No Kraken account yet" in desk.get_by_test_id("desk-empty").inner_text()
