"""An owner without 2FA saves the organization's settings in Chromium: the portal says why it
needs 2FA first, takes them through set-up and back to the form as they typed it."""

from __future__ import annotations

from typing import Any

import pytest

from apps.orgs.models import Organization
from apps.orgs.permissions import Role
from tests.browser.test_accessibility import FAILING_IMPACTS, _axe
from tests.browser.test_two_factor import code_from_manual_key
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.plugins.browser import PortalServer

pytestmark = pytest.mark.browser


def test_an_owner_without_2fa_saves_settings_after_enrolling_without_typing_them_again(
    page: Any, portal_server: PortalServer
) -> None:
    user = UserFactory(email="owner@acme.test")
    org = OrganizationFactory(name="Acme Capital", slug="acme", require_2fa=False)
    MembershipFactory(org=org, user=user, role=Role.OWNER)

    page.goto("/o/acme/settings/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/o/acme/settings/")

    page.get_by_label("Name").fill("Acme Capital Partners")
    page.get_by_label("Require two-factor authentication for every member").check()
    page.get_by_role("button", name="Save").click()

    page.wait_for_url("**/accounts/two-factor/setup/**")
    why = page.get_by_test_id("step-up-pending")
    assert "Saving the organization's settings needs two-factor authentication" in (
        why.inner_text()
    )
    assert "What you typed is kept" in why.inner_text()
    # The notice passes axe-core like every other page (the crawl never parks a form).
    serious = [v["id"] for v in _axe(page) if v["impact"] in FAILING_IMPACTS]
    assert serious == []
    manual_key = page.get_by_test_id("manual-key").inner_text()
    page.get_by_label("Authentication code").fill(code_from_manual_key(manual_key))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    page.get_by_role("link", name="Continue").click()

    page.wait_for_url("**/o/acme/settings/")
    assert page.get_by_text("What you typed is back").is_visible()
    assert page.get_by_label("Name").input_value() == "Acme Capital Partners"
    assert page.get_by_label("Require two-factor authentication for every member").is_checked()
    assert Organization.objects.get(pk=org.pk).name == "Acme Capital"  # not saved behind their back

    page.get_by_role("button", name="Save").click()
    page.get_by_text("Settings saved.").wait_for()
    saved = Organization.objects.get(pk=org.pk)
    assert saved.name == "Acme Capital Partners"
    assert saved.require_2fa
    assert page.console_errors == []  # type: ignore[attr-defined]
