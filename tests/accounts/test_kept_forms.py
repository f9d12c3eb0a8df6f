"""A form sent by someone who must first confirm 2FA (or set it up) is not lost: the pages say
why, what was typed comes back afterwards, and secrets are never parked in the session."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.stepup import FIELD_NOT_KEPT, FORM_KEPT, PENDING_SESSION_KEY
from apps.approvals.models import ApprovalRequest
from apps.vault.models import Credential
from tests.accounts.otp import totp_code
from tests.conftest import verified_client
from tests.factories import master_account, subaccount_of
from tests.vault.conftest import KEK_1, new_key_pair, step_up

pytestmark = pytest.mark.django_db

SETTINGS = reverse("orgs:settings", kwargs={"org": "acme"})
ADD_KEY = reverse("vault:credential-create", kwargs={"org": "acme"})
STEP_UP = reverse("accounts:step-up")
SETUP = reverse("accounts:two-factor-setup")


def text(response: Any) -> str:
    return unescape(response.content.decode())


def no_2fa_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def enrol(client: Client, user: Any, next_url: str) -> Any:
    """Scan the QR code (read the pending device's key) and confirm the first code."""
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=False)
    return client.post(SETUP, {"code": totp_code(device), "next": next_url})


def test_an_owner_without_2fa_is_told_why_enrols_and_finds_the_settings_form_as_typed(
    owner, org
) -> None:
    org.require_2fa = False  # 2FA optional here, so the owner could open the form without it
    org.save(update_fields=["require_2fa"])
    client = no_2fa_client(owner.user)
    typed = {"name": "Acme Capital Partners", "allow_overprivileged_keys": "on"}
    response = client.post(SETTINGS, typed)
    assert response.status_code == 302
    assert response["Location"] == f"{STEP_UP}?next=%2Fo%2Facme%2Fsettings%2F"

    # No authenticator yet: the step-up sends them to enrolment, which says why.
    setup_url = client.get(response["Location"])["Location"]
    assert setup_url.startswith(SETUP)
    page = text(client.get(setup_url))
    assert (
        "Saving the organization's settings needs two-factor authentication, which your "
        "account does not have yet." in page
    )
    assert "What you typed is kept" in page
    org.refresh_from_db()
    assert org.name == "Acme Capital"  # nothing saved yet

    codes_page = text(enrol(client, owner.user, "/o/acme/settings/"))
    assert 'href="/o/acme/settings/"' in codes_page  # "Continue" goes back to the form

    form_page = text(client.get(SETTINGS))
    assert FORM_KEPT in form_page
    assert 'value="Acme Capital Partners"' in form_page
    assert re.search(r'name="allow_overprivileged_keys"[^>]*checked', form_page)
    # Once: a reload shows the stored settings again.
    assert 'value="Acme Capital"' in text(client.get(SETTINGS))

    assert client.post(SETTINGS, typed).status_code == 302
    org.refresh_from_db()
    # Accepting over-privileged keys is a loosening: a sole owner's waits 24 hours.
    assert (org.name, org.allow_overprivileged_keys) == ("Acme Capital Partners", False)
    assert ApprovalRequest.objects.get().summary["org_setting"] == "allow_overprivileged_keys"
    assert not org.require_2fa  # the unticked box came back unticked


def test_a_key_form_comes_back_without_its_secrets_which_never_reach_the_session(
    trader, settings
) -> None:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    client = verified_client(trader.user)  # 2FA on, but no fresh step-up
    pair = new_key_pair(otp="key-pass-42")
    # Two accounts to choose from: the one chosen must come back chosen.
    desk = subaccount_of(master_account(trader.org), "Desk 2")
    typed = {
        "label": "Desk ETH",
        "api_key": pair.api_key,
        "secret": pair.secret,
        "otp": pair.otp,
        "account": str(desk.pk),
        "use": "trading",
    }
    response = client.post(ADD_KEY, typed)
    assert response["Location"] == f"{STEP_UP}?next=%2Fo%2Facme%2Fvault%2Fnew%2F"

    stored = Session.objects.get(session_key=client.session.session_key).get_decoded()
    kept = stored[PENDING_SESSION_KEY]
    assert kept["data"]["label"] == ["Desk ETH"]
    assert set(kept["dropped"]) == {"secret", "otp"}
    raw = str(stored)
    assert pair.secret not in raw
    assert "key-pass-42" not in raw

    page = text(client.get(response["Location"]))
    assert "Adding an API key needs a fresh code from your authenticator app." in page
    assert "Private key, Key password (2FA)" in page
    assert "were not kept" in page

    step_up(client)
    form_page = text(client.get(ADD_KEY))
    assert FORM_KEPT in form_page
    assert 'value="Desk ETH"' in form_page
    assert f'value="{pair.api_key}"' in form_page
    assert f'<option value="{desk.pk}" selected>' in form_page
    assert form_page.count(FIELD_NOT_KEPT) == 2
    assert pair.secret not in form_page
    assert not Credential.objects.exists()


def test_an_outsider_path_cannot_pick_up_a_kept_form(owner, client_for) -> None:
    """Kept fields belong to the URL they were typed at: another form does not get them."""
    client = client_for(owner)
    client.post(SETTINGS, {"name": "Somewhere else"})
    page = text(step_up(client).get(reverse("orgs:invitation-create", kwargs={"org": "acme"})))
    assert "Somewhere else" not in page
    assert 'value="Somewhere else"' in text(client.get(SETTINGS))


def test_a_plain_step_up_forgets_an_older_purpose(owner, client_for) -> None:
    client = client_for(owner)
    client.post(SETTINGS, {"name": "Kept"})
    # Another sensitive action without a purpose of its own: its step-up page must not claim
    # the settings form is waiting.
    client.post(reverse("accounts:recovery-codes"))
    page = text(client.get(STEP_UP))
    assert "Saving the organization's settings" not in page
