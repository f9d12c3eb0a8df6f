"""Changing the password and resetting it, in a real browser against the ASGI server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.test_two_factor import code_from_manual_key
from tests.factories import PASSWORD, UserFactory
from tests.plugins.browser import PortalServer

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a different and long passphrase 7"


def test_a_person_enrols_then_changes_their_password_from_the_profile(
    page: Any, portal_server: PortalServer
) -> None:
    user = UserFactory(email="casey@example.test")
    page.goto("/accounts/profile/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/profile/")

    # Without 2FA, the change asks for it first (a step-up needs an authenticator).
    page.get_by_role("link", name="Change password").click()
    page.wait_for_url("**/accounts/two-factor/setup/**")
    manual_key = page.get_by_test_id("manual-key").inner_text()
    page.get_by_label("Authentication code").fill(code_from_manual_key(manual_key))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    page.get_by_role("link", name="Continue").click()

    page.wait_for_url("**/accounts/password/change/")
    page.get_by_label("Old password").fill(PASSWORD)
    page.get_by_label(re.compile(r"^New password:?$")).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/accounts/profile/")
    assert page.get_by_text("Your password is changed").is_visible()
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert page.console_errors == []


def test_the_reset_page_answers_the_same_for_any_address(
    page: Any, portal_server: PortalServer
) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("nobody@example.test")
    page.get_by_role("button", name="Email me a link").click()
    page.wait_for_url("**/accounts/password/reset/sent/")
    assert page.get_by_role("heading", name="Check your email").is_visible()
    assert page.console_errors == []
