"""Real Chromium against the real ASGI server: the members page, onboarding and invitations."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.html import escape

from apps.accounts.services import totp_device_create
from apps.orgs.models import Invitation, Membership, OnboardingApplication
from apps.orgs.permissions import Role
from apps.orgs.selectors import token_hash
from apps.orgs.services import invitations, onboarding

pytestmark = pytest.mark.browser


def test_an_owner_changes_a_role_in_place_and_the_page_stays_put(
    page: Any, sign_in_browser: Any, owner: Membership, trader: Membership
) -> None:
    device = totp_device_create(user=owner.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, owner.user, device)
    page.goto("/o/acme/members/")
    page.evaluate("window.__samePage = true")

    row = page.locator(f"#member-{trader.pk}")
    row.get_by_label("Role of trader@acme.test").select_option("approver")
    row.get_by_role("button", name="Change").click()

    page.locator(f"#member-{trader.pk}").get_by_text("trader@acme.test is now Approver.").wait_for()
    # htmx swapped the row: no navigation happened.
    assert page.evaluate("window.__samePage") is True
    trader.refresh_from_db()
    assert trader.role == Role.APPROVER
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_washington_business_is_told_the_service_is_unavailable(
    page: Any, portal_server: Any
) -> None:
    page.goto("/onboarding/apply/")
    page.get_by_label("Company name").fill("Rainier Capital")
    # The state field appears only for the United States.
    page.get_by_label("Country of business").select_option("GB")
    assert not page.get_by_label("US state").is_visible()
    page.get_by_label("Country of business").select_option("US")
    assert page.get_by_label("US state").is_visible()
    page.get_by_label("US state").select_option("WA")
    page.get_by_label("First name").fill("Ray")
    page.get_by_label("Last name").fill("Nier")
    page.get_by_label("Work email").fill("ray@rainier.test")
    page.get_by_label("Type of business").select_option(label="Family office")
    page.get_by_label("Assets under management").select_option(label="$10M to $50M")
    page.get_by_role("button", name="Submit application").click()

    page.get_by_text(onboarding.SERVICE_UNAVAILABLE_REGION).wait_for()
    assert not OnboardingApplication.objects.exists()
    # The refused form comes back with status 400, which Chromium reports on the console.
    errors = [e for e in page.console_errors if "status of 400" not in e]  # type: ignore[attr-defined]
    assert errors == []


def test_an_invited_newcomer_creates_an_account_and_is_asked_to_set_up_2fa(
    page: Any, portal_server: Any, owner: Membership
) -> None:
    token = secrets.token_urlsafe(32)
    Invitation.objects.create(
        org=owner.org,
        email="newcomer@example.test",
        role=Role.TREASURER,
        token_hash=token_hash(token),
        invited_by=owner.user,
        expires_at=timezone.now() + timedelta(days=7),
    )
    page.goto(f"/invitations/{token}/")
    page.get_by_label("First name").fill("Nia")
    page.get_by_label("Last name").fill("Newcomer")
    page.locator("#id_password1").fill("a long and unusual passphrase 42")
    page.get_by_label("Password again").fill("a long and unusual passphrase 42")
    page.get_by_role("button", name="Create account and join").click()

    # Acme requires 2FA, so the new member's first stop is setting it up.
    page.wait_for_url("**/accounts/two-factor/setup/**")
    user = get_user_model().objects.get(email="newcomer@example.test")
    assert Membership.objects.get(user=user).role == Role.TREASURER

    page.goto(f"/invitations/{token}/")
    assert escape(invitations.INVITATION_MESSAGES["accepted"]) in page.content()


def test_an_owner_adds_the_master_and_a_subaccount_that_shares_its_tier(
    page: Any, sign_in_browser: Any, owner: Membership
) -> None:
    device = totp_device_create(user=owner.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, owner.user, device)  # The sign-in code counts as a fresh step-up.
    page.goto("/o/acme/")
    page.get_by_role("link", name="Kraken accounts").click()
    assert page.get_by_text("No Kraken account yet.").is_visible()

    page.get_by_role("link", name="Add an account").click()
    page.get_by_label("Label").fill("Main account")
    page.get_by_label("Account type").select_option("master")
    page.get_by_label("Kraken account id (IIBAN)").fill("aa96 n74g cgef n8ki")
    page.get_by_label("Verification tier").select_option("pro")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Kraken account “Main account” added.").wait_for()

    page.get_by_role("link", name="Add an account").click()
    page.get_by_label("Label").fill("Desk 2")
    page.get_by_label("Account type").select_option("subaccount")
    page.get_by_label("Verification tier").select_option("intermediate")
    page.get_by_role("button", name="Save").click()
    # A subaccount's tier is its master's: the form says so next to the field.
    assert page.get_by_text("A subaccount shares its master account's tier.").is_visible()
    page.get_by_label("Verification tier").select_option("")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Kraken account “Desk 2” added.").wait_for()

    desk = page.get_by_role("row", name="Desk 2")
    assert "Pro (master's)" in desk.inner_text()
    assert "under Main account" in desk.inner_text()
    assert page.get_by_role("cell", name="AA96N74GCGEFN8KI").is_visible()
    # The refused form came back with status 400, which Chromium logs; nothing else went wrong.
    errors = page.console_errors  # type: ignore[attr-defined]
    assert [e for e in errors if "400 (Bad Request)" not in e] == []
