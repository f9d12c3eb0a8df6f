from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from apps.accounts.forms import TOTP_SHAPE
from apps.accounts.models import EncryptedTOTPDevice, RecoveryCode, SecondFactorThrottle
from apps.accounts.services import CODE_WRONG, RECOVERY_CODE_COUNT
from apps.audit.models import AuditRecord
from apps.orgs.permissions import Role
from tests.accounts.conftest import Person
from tests.accounts.otp import totp_code, wrong_code
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SETUP = reverse("accounts:two-factor-setup")
CODES = reverse("accounts:recovery-codes")
DISABLE = reverse("accounts:two-factor-disable")


@pytest.fixture
def newcomer_client(db: Any) -> tuple[Client, Any]:
    """Someone signed in by password who has no authenticator yet."""
    user = UserFactory(email="new@example.test")
    client = Client()
    client.force_login(user)
    return client, user


def test_set_up_shows_a_qr_code_and_the_manual_key(newcomer_client) -> None:
    client, user = newcomer_client
    response = client.get(SETUP)
    assert response.status_code == 200
    page = response.content.decode()
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=False)
    secret = base64.b32encode(device.bin_key).decode()
    assert response.context["manual_key"].replace(" ", "") == secret
    # The QR code is an SVG image in a data: URI (the CSP allows img data:, nothing inline).
    qr = response.context["qr"]
    assert qr.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(qr.split(",", 1)[1]).decode()
    assert svg.startswith("<svg")
    assert "<path" in svg
    assert f'src="{qr}"' in page
    assert "style=" not in page


def test_reloading_set_up_keeps_the_same_key(newcomer_client) -> None:
    client, _ = newcomer_client
    first = client.get(SETUP).context["manual_key"]
    assert client.get(SETUP).context["manual_key"] == first


def test_confirming_with_a_code_turns_two_factor_on_and_shows_ten_codes_once(
    newcomer_client,
) -> None:
    client, user = newcomer_client
    client.get(SETUP)
    device = EncryptedTOTPDevice.objects.get(user=user)
    response = client.post(SETUP, {"code": totp_code(device)})
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == RECOVERY_CODE_COUNT == len(set(codes))
    page = response.content.decode()
    assert all(code in page for code in codes)
    device.refresh_from_db()
    assert device.confirmed
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert RecoveryCode.objects.filter(device__user=user).count() == RECOVERY_CODE_COUNT
    assert AuditRecord.objects.filter(action="auth.two_factor_enrolled", actor_id=user.pk).exists()
    # Afterwards the page shows the status, never the codes again.
    later = client.get(SETUP).content.decode()
    assert "10 recovery codes left" in later
    assert not any(code in later for code in codes)


def test_a_wrong_enrolment_code_is_explained_next_to_the_field(newcomer_client) -> None:
    client, user = newcomer_client
    client.get(SETUP)
    device = EncryptedTOTPDevice.objects.get(user=user)
    response = client.post(SETUP, {"code": wrong_code(device)})
    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [CODE_WRONG]}
    assert 'id="code-errors"' in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert SecondFactorThrottle.objects.get(user=user).failures == 1


def test_enrolment_takes_only_authenticator_codes(newcomer_client) -> None:
    client, _ = newcomer_client
    client.get(SETUP)
    response = client.post(SETUP, {"code": "abcdefgh"})
    assert response.context["form"].errors == {"code": [TOTP_SHAPE]}


def test_a_member_of_an_organization_requiring_2fa_is_sent_to_set_up(newcomer_client) -> None:
    client, user = newcomer_client
    org = OrganizationFactory(name="Strict Fund", slug="strict", require_2fa=True)
    MembershipFactory(org=org, user=user, role=Role.TRADER)
    dashboard = reverse("orgs:dashboard", kwargs={"org": "strict"})
    response = client.get(dashboard)
    assert response.status_code == 302
    assert response["Location"] == f"{SETUP}?next={dashboard}"
    page = client.get(response["Location"]).content.decode()
    assert "Strict Fund requires two-factor authentication" in page

    device = EncryptedTOTPDevice.objects.get(user=user)
    response = client.post(response["Location"], {"code": totp_code(device), "next": dashboard})
    assert f'href="{dashboard}"' in response.content.decode()
    assert client.get(dashboard).status_code == 200


def test_the_recovery_codes_page_counts_the_codes_left(signed_in: Client) -> None:
    response = signed_in.get(CODES)
    assert response.status_code == 200
    assert "<strong>10</strong> unused recovery codes" in response.content.decode()


def test_new_recovery_codes_replace_the_old_ones(signed_in: Client, person: Person) -> None:
    old = set(RecoveryCode.objects.filter(device__user=person.user).values_list("pk", flat=True))
    response = signed_in.post(CODES)
    assert response.status_code == 200
    new = set(response.context["codes"])
    assert len(new) == RECOVERY_CODE_COUNT
    stored = RecoveryCode.objects.filter(device__user=person.user)
    assert stored.count() == RECOVERY_CODE_COUNT
    assert not old & set(stored.values_list("pk", flat=True))
    assert not any(code in set(stored.values_list("digest", flat=True)) for code in new)
    assert AuditRecord.objects.filter(action="auth.recovery_codes_regenerated").count() == 1


def test_turning_two_factor_off_removes_the_devices(signed_in: Client, person: Person) -> None:
    response = signed_in.post(DISABLE, HTTP_REFERER="http://testserver" + SETUP)
    assert response.status_code == 302
    assert response["Location"] == SETUP
    assert not EncryptedTOTPDevice.objects.filter(user=person.user).exists()
    assert not RecoveryCode.objects.filter(device__user=person.user).exists()
    assert AuditRecord.objects.filter(action="auth.two_factor_disabled").count() == 1
    # The set-up page offers a new enrolment.
    assert "manual_key" in signed_in.get(SETUP).context


def test_an_unverified_session_must_verify_before_managing_two_factor(person: Person) -> None:
    client = Client()
    client.force_login(person.user)
    for url in (SETUP, CODES, reverse("accounts:profile")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:two-factor-verify"))
    response = client.post(reverse("accounts:two-factor-verify"), {"code": person.code()})
    assert response.status_code == 302
    assert client.get(SETUP).status_code == 200
