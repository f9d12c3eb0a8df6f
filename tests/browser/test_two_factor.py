"""Two-factor enrolment and the sign-in lockout in a real browser against the ASGI server."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from django.conf import settings
from django_otp.oath import hotp

from apps.orgs.permissions import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.plugins.browser import PortalServer

pytestmark = pytest.mark.browser


def code_from_manual_key(manual_key: str) -> str:
    """What an authenticator app shows for a key typed in by hand."""
    key = base64.b32decode(manual_key.replace(" ", ""))
    return f"{hotp(key, int(time.time()) // 30):06d}"


def test_a_member_of_a_strict_organization_enrols_before_seeing_it(
    page: Any, portal_server: PortalServer
) -> None:
    user = UserFactory(email="newcomer@acme.test", time_zone="Asia/Tokyo")
    org = OrganizationFactory(name="Acme Capital", slug="acme", require_2fa=True)
    MembershipFactory(org=org, user=user, role=Role.VIEWER)

    page.goto("/o/acme/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # No authenticator yet, and Acme requires one: the portal sends them to set-up first.
    page.wait_for_url("**/accounts/two-factor/setup/?next=/o/acme/")
    assert page.get_by_text("Acme Capital requires two-factor authentication").is_visible()
    qr = page.get_by_alt_text("QR code to add this account to an authenticator app")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # CSP let it load.

    manual_key = page.get_by_test_id("manual-key").inner_text()
    page.get_by_label("Authentication code").fill(code_from_manual_key(manual_key))
    page.get_by_role("button", name="Turn on two-factor authentication").click()

    codes = page.get_by_test_id("recovery-codes").locator("li").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/o/acme/")
    assert page.get_by_role("heading", name="Acme Capital").is_visible()

    # Times are shown in the person's zone (Tokyo), also under the ASGI server.
    page.goto("/accounts/two-factor/setup/")
    assert " JST" in page.get_by_text("protected by an authenticator app").inner_text()
    assert page.console_errors == []


def test_repeated_wrong_passwords_show_the_lockout_page(
    page: Any, portal_server: PortalServer
) -> None:
    user = UserFactory(email="forgetful@acme.test")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
    assert page.get_by_role("heading", name="Too many failed sign-ins").is_visible()
    assert "for 15 minutes" in page.get_by_role("alert").inner_text()
