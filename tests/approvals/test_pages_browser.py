"""In Chromium: the approvals and notifications pages with something on them (a waiting role
grant, a notification), which the crawls in tests/browser reach only empty, pass axe-core with
no serious or critical violation and fit a 390 px phone screen."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals.models import ApprovalRequest
from apps.approvals.role_grants import role_grant_gate
from apps.notifications.services import notify
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.browser.test_accessibility import FAILING_IMPACTS, _axe, _sign_in
from tests.browser.test_small_screens import OVERFLOW, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture
def paths(
    portal_server: Any, owner: Membership, admin: Membership, viewer: Membership
) -> list[str]:
    """Written before the page's Playwright loop starts, so the live events sent on commit go
    out normally (not from inside a running event loop)."""
    role_grant_gate(actor=admin, role=Role.TRADER, member=viewer, email=None, request=None)
    approval = ApprovalRequest.objects.get()
    notify(
        org=owner.org,
        user_ids=[owner.user_id],
        kind="approvals.executed",
        title="A change was carried out",
        body="Details of the change.",
        link=f"/o/acme/approvals/{approval.pk}/",
    )
    return [
        "/o/acme/approvals/",
        f"/o/acme/approvals/{approval.pk}/",
        "/o/acme/approvals/policies/",
        "/o/acme/approvals/policies/orgs.role_grant/",
        "/o/acme/notifications/",
        "/o/acme/notifications/preferences/",
    ]


def test_the_pages_with_content_pass_axe_and_fit_a_phone(
    paths: list[str], page: Any, portal_server: Any, owner: Membership
) -> None:
    _sign_in(page, owner.user, portal_server.url)
    serious: dict[str, list[str]] = {}
    overflow: dict[str, list[str]] = {}
    for width in (1400, PHONE["width"]):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        for path in paths:
            response = page.goto(path)
            assert response is not None, path
            assert response.status == 200, path
            page.wait_for_load_state("load")
            if width == PHONE["width"]:
                if found := page.evaluate(OVERFLOW):
                    overflow[path] = found
                continue
            bad = [v["id"] for v in _axe(page) if v.get("impact") in FAILING_IMPACTS]
            if bad:
                serious[path] = bad
    assert serious == {}, serious
    assert overflow == {}, overflow
    assert page.console_errors == [], page.console_errors
