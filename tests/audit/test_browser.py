"""A viewer reads the audit trail in Chromium: filters through htmx, pages back, no CSP errors."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.accounts.services import totp_device_create
from apps.audit.services import audit_record

pytestmark = pytest.mark.browser


def test_a_viewer_filters_the_trail_and_pages_back(
    page: Any,
    portal_server,
    sign_in_browser,
    owner,
    treasurer,
    viewer,
) -> None:
    for i in range(55):
        audit_record(action="order.place", actor=owner, detail={"n": i})
    audit_record(action="withdrawal.request", actor=treasurer, detail={"asset": "BTC"})
    viewer.user.time_zone = "Europe/Paris"
    viewer.user.save(update_fields=["time_zone"])
    device = totp_device_create(user=viewer.user, name="phone", confirmed=True)
    sign_in_browser(page, viewer.user, device)

    page.goto("/o/acme/audit/")
    rows = page.locator("#record-table tbody tr")
    expect(rows).to_have_count(50)
    assert "Time (Europe/Paris)" in page.locator("#record-table thead").inner_text()

    page.get_by_label("Action").fill("withdrawal.")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/o/acme/audit/?**action=withdrawal.**")
    expect(rows).to_have_count(1)
    assert "treasurer@acme.test" in rows.first.inner_text()
    if os.environ.get("AUDIT_SCREENSHOT"):
        # Playwright hides the caret with an injected <style>, which the CSP rightly blocks.
        page.screenshot(path=os.environ["AUDIT_SCREENSHOT"], full_page=True)

    page.get_by_label("Action").fill("order.")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Older records →").click()
    page.wait_for_url("**before=**")
    expect(rows).to_have_count(5)
    assert rows.last.locator("td").first.inner_text() == "1"
    if not os.environ.get("AUDIT_SCREENSHOT"):
        assert page.console_errors == []
