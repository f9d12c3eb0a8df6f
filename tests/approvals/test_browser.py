"""Chromium: an admin grants the trader role to a viewer, who stays a viewer until an owner
approves in the inbox with a TOTP step-up; the viewer's open page then reconnects with the new
role, and the owner and the admin are notified."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session

from apps.accounts.services import STEP_UP_SESSION_KEY, totp_device_create
from apps.approvals.models import ApprovalRequest
from apps.notifications.models import Notification
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.accounts.otp import totp_code

pytestmark = pytest.mark.browser


def new_page(page: Any, portal_server: Any) -> Any:
    """Another person's browser: a fresh context (its own cookies) in the same Chromium."""
    context = page.context.browser.new_context(
        base_url=portal_server.url, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(10_000)
    other = context.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    other.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    other.console_errors = errors
    return other


def age_step_up(page: Any) -> None:
    """The sign-in's confirmation was long ago: the next sensitive action asks again."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    assert Session.objects.filter(session_key=cookie["value"]).exists()
    store = SessionStore(session_key=cookie["value"])
    store[STEP_UP_SESSION_KEY] = time.time() - 3600
    store.save()


def test_an_admins_trader_grant_waits_for_an_owners_totp_approval_then_the_page_reconnects(
    page: Any,
    portal_server: Any,
    sign_in_browser: Any,
    owner: Membership,
    admin: Membership,
    viewer: Membership,
) -> None:
    devices = {
        m.pk: totp_device_create(user=m.user, name="Authenticator app", confirmed=True)
        for m in (owner, admin, viewer)
    }

    # The viewer has the dashboard open; its header socket says who they are.
    viewer_page = new_page(page, portal_server)
    sign_in_browser(viewer_page, viewer.user, devices[viewer.pk])
    viewer_page.goto("/o/acme/")
    viewer_page.locator('#live-role[data-role="viewer"]').wait_for()
    viewer_page.evaluate("window.__samePage = true")

    # The admin makes them a trader on the members page: it waits for an owner.
    admin_page = new_page(page, portal_server)
    sign_in_browser(admin_page, admin.user, devices[admin.pk])
    admin_page.goto("/o/acme/members/")
    row = admin_page.locator(f"#member-{viewer.pk}")
    row.get_by_label("Role of viewer@acme.test").select_option("trader")
    row.get_by_role("button", name="Change").click()
    admin_page.locator(f"#member-{viewer.pk}").get_by_text(
        "An owner must approve making viewer@acme.test Trader"
    ).wait_for()
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER

    # The owner finds it in the inbox (the header counts it) and approves with a fresh code.
    sign_in_browser(page, owner.user, devices[owner.pk])
    age_step_up(page)
    page.goto("/o/acme/approvals/")
    page.locator('#approvals-count [data-waiting="1"]').wait_for()
    page.get_by_role("link", name="Role grant").click()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/accounts/step-up/**")
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER  # not before the owner confirmed
    page.get_by_label("Authentication code").fill(totp_code(devices[owner.pk]))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/o/acme/approvals/*/")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Your decision was recorded.").wait_for()
    page.locator('[data-status="executed"]').wait_for()

    # The viewer's open page was closed for re-authorisation, reconnected, and shows the new
    # role without a reload.
    viewer_page.locator('#live-role[data-role="trader"]').wait_for()
    assert viewer_page.evaluate("window.__samePage") is True
    viewer.refresh_from_db()
    assert viewer.role == Role.TRADER
    assert ApprovalRequest.objects.get().status == ApprovalRequest.Status.EXECUTED

    # The owner and the admin are told; the admin's open page counts it live.
    for person in (owner, admin):
        assert Notification.objects.filter(
            recipient=person.user, kind="approvals.executed"
        ).exists()
    admin_page.locator("#notification-badge [data-unread]").wait_for()
    for p in (page, admin_page, viewer_page):
        assert p.console_errors == [], p.console_errors
