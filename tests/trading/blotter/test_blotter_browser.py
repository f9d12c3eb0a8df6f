"""The blotter in Chromium: a member filters the order history with the form (htmx, the URL
follows), pages through it, and sees a new fill appear on the fills blotter live, with their
filters kept, when exchange records it and the desk's live event goes out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connections

from apps.orgs.permissions import Role
from apps.trading.live_blotter import desk_changed_on_commit
from apps.trading.selectors_blotter import PAGE_SIZE
from tests.browser.test_accessibility import FAILING_IMPACTS, _axe
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.plugins.browser import PortalServer
from tests.trading.blotter.conftest import DeskData
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.browser


@pytest.fixture
def portal_server_env() -> dict[str, str]:
    return {"PORTAL_KEYRING": f"k1:{KEK_1}"}


def serious_violations(page: Any) -> list[str]:
    return [v["id"] for v in _axe(page) if v["impact"] in FAILING_IMPACTS]


def publish(account_id: int) -> None:
    try:
        desk_changed_on_commit(account_id=account_id)  # no transaction here: sent at once
    finally:
        connections.close_all()


def sign_in(page: Any, email: str, url: str) -> None:
    page.goto(url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{url}")


def test_a_member_filters_pages_and_sees_fills_arrive_live(
    page: Any, portal_server: PortalServer, settings: Any
) -> None:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    org = OrganizationFactory(name="Acme Capital", slug="acme", require_2fa=False)
    trader = MembershipFactory(
        org=org, role=Role.TRADER, user=UserFactory(email="trader@acme.test")
    )
    viewer = MembershipFactory(
        org=org, role=Role.VIEWER, user=UserFactory(email="viewer@acme.test")
    )
    from tests.factories import master_account

    desk = DeskData(account=master_account(org))
    now = datetime.now(tz=UTC) - timedelta(hours=1)
    sells = [
        desk.order(by=trader, side="sell", status="closed", opened_at=now + timedelta(seconds=i))
        for i in range(PAGE_SIZE + 5)
    ]
    buys = [
        desk.order(by=None, side="buy", status="closed", opened_at=now + timedelta(seconds=i))
        for i in range(3)
    ]

    sign_in(page, viewer.user.email, "/o/acme/desk/blotter/history/")
    table = page.get_by_test_id("blotter-table")
    assert table.locator("tbody tr").count() == PAGE_SIZE

    assert serious_violations(page) == []

    page.get_by_label("Side").select_option("buy")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**side=buy**")
    page.wait_for_function("document.querySelectorAll('#blotter-table tbody tr').length === 3")
    assert table.get_by_text("External").count() == 3
    assert all(page.locator(f'[data-row="order-{o.pk}"]').count() == 1 for o in buys)

    page.get_by_label("Side").select_option("sell")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**side=sell**")
    page.get_by_test_id("next-page").click()
    page.wait_for_url("**after=**")
    page.wait_for_function("document.querySelectorAll('#blotter-table tbody tr').length === 5")
    assert page.locator(f'[data-row="order-{sells[0].pk}"]').count() == 1  # the oldest, last

    # The fills blotter, filtered to the trader's fills; a fill arrives and the desk's live
    # event goes out (what exchange's streams hook does once merged).
    page.goto("/o/acme/desk/blotter/fills/?member=" + str(trader.user_id))
    page.get_by_text("No fills match.").wait_for()
    page.wait_for_function("document.querySelector('[data-live-header]') !== null")
    page.wait_for_timeout(500)  # the member socket connects
    external = desk.order(by=None, side="sell", status="closed", opened_at=now)
    desk.fill(external, qty="0.3", price="51000", at=datetime.now(tz=UTC))  # not the trader's
    theirs = desk.order(by=trader, side="buy", status="closed", opened_at=now)
    fill = desk.fill(theirs, qty="0.25", price="50000", at=datetime.now(tz=UTC))
    # Published from a thread of its own: this one runs Playwright's event loop, and the
    # channel layer's synchronous send may not run inside a loop.
    publisher = threading.Thread(target=publish, args=(desk.account.pk,))
    publisher.start()
    publisher.join()

    page.locator(f'[data-row="fill-{fill.pk}"]').wait_for(timeout=10_000)
    assert page.locator("#blotter-table tbody tr").count() == 1  # the filter still applies
    assert "member=" in page.url
    assert serious_violations(page) == []
    page.goto("/o/acme/desk/pnl/")
    page.get_by_test_id("pnl-report").wait_for()
    assert serious_violations(page) == []
    assert page.console_errors == []  # type: ignore[attr-defined]
