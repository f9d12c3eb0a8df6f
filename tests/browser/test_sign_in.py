"""A person signs in with password and authenticator code, switches organization in the top
bar, and sees the navigation their role allows in each."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import NoReverseMatch, reverse

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.services import totp_device_create
from apps.orgs.permissions import Role, role_can
from kraken_portal.navigation import NAVIGATION
from tests.accounts.otp import throttle_reset, totp_code, wrong_code
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.browser


def expected_nav(role: str, slug: str) -> list[str]:
    """The labels the permission table grants this role, for the apps installed right now."""
    labels = []
    for item in NAVIGATION:
        try:
            reverse(item.url_name, kwargs={"org": slug})
        except NoReverseMatch:
            continue
        if role_can(role, item.capability):
            labels.append(item.label)
    return labels


def nav_labels(page: Any) -> list[str]:
    return [label.strip() for label in page.locator("nav.mainnav a").all_inner_texts()]


@pytest.fixture
def dana() -> tuple[Any, EncryptedTOTPDevice]:
    """A trader at Acme Capital and the owner of Beta Partners, with an authenticator app."""
    user = UserFactory(email="dana@acme.test")
    MembershipFactory(
        org=OrganizationFactory(name="Acme Capital", slug="acme"), user=user, role=Role.TRADER
    )
    MembershipFactory(
        org=OrganizationFactory(name="Beta Partners", slug="beta"), user=user, role=Role.OWNER
    )
    device = totp_device_create(user=user, name="Authenticator app", confirmed=True)
    return user, device


def test_sign_in_with_two_factor_and_switch_organization(page: Any, portal_server, dana) -> None:
    user, device = dana
    page.goto("/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/accounts/two-factor/verify/**")
    page.get_by_label("Authentication code").fill(wrong_code(device))
    page.get_by_role("button", name="Verify").click()
    assert page.locator("#code-errors").inner_text().startswith("That code is not right")

    throttle_reset(user)  # A quick retry after a wrong code would have to wait a second.
    page.get_by_label("Authentication code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()

    # Two organizations and none chosen yet: the portal asks which one.
    page.get_by_role("heading", name="Your organizations").wait_for()
    assert page.url == portal_server.url + "/"
    assert page.locator(".whoami").inner_text() == user.email

    page.locator("#org-switch").select_option("acme")
    page.wait_for_url("**/o/acme/")
    assert page.get_by_role("heading", name="Acme Capital").is_visible()
    trader_nav = nav_labels(page)
    assert trader_nav == expected_nav(Role.TRADER, "acme")
    assert "Overview" in trader_nav
    assert "Members" not in trader_nav
    assert "Settings" not in trader_nav

    page.locator("#org-switch").select_option("beta")
    page.wait_for_url("**/o/beta/")
    assert page.get_by_role("heading", name="Beta Partners").is_visible()
    owner_nav = nav_labels(page)
    assert owner_nav == expected_nav(Role.OWNER, "beta")
    assert "Members" in owner_nav
    assert page.locator("#org-switch").input_value() == "beta"

    # The choice is remembered: the brand link leads back to Beta.
    page.get_by_role("link", name="Kraken Institutional").click()
    page.wait_for_url("**/o/beta/")

    assert page.console_errors == []

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/accounts/login/")
    page.goto("/o/beta/")
    page.wait_for_url("**/accounts/login/?next=/o/beta/")
