"""/staff/admin/ has no password-only way in: it needs the portal's sign-in and a session that
2FA verified, exactly like the staff pages; production leaves out the 2FA and lockout admins."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib import admin
from django.test import Client

from apps.accounts.services import totp_device_create
from kraken_portal.admin_site import PortalAdminSite
from tests.conftest import verified_client
from tests.factories import PASSWORD, UserFactory
from tests.platform.test_deploy import production_env, run_python

pytestmark = pytest.mark.django_db

INDEX = "/staff/admin/"
ORGS = "/staff/admin/orgs/organization/"


def test_the_admin_runs_on_the_portals_two_factor_site() -> None:
    assert isinstance(admin.site, PortalAdminSite)
    assert admin.site.name == "admin"
    assert settings.OTP_ADMIN_HIDE_SENSITIVE_DATA is True


def test_anonymous_visitors_go_to_the_portals_sign_in_not_an_admin_form() -> None:
    response = Client().get(INDEX, follow=True)
    (last, _status) = response.redirect_chain[-1]
    assert last.startswith("/accounts/login/")
    assert "next=/staff/admin/" in last


@pytest.mark.parametrize("url", [INDEX, ORGS])
def test_staff_signed_in_with_a_password_only_are_sent_to_set_up_two_factor(url: str) -> None:
    staff = UserFactory(email="reviewer@kraken.test", is_staff=True, is_superuser=True)
    client = Client()
    # The portal's own sign-in, with the password and nothing else.
    signed_in = client.post("/accounts/login/", {"email": staff.email, "password": PASSWORD})
    assert signed_in.status_code == 302
    assert "_auth_user_id" in client.session
    response = client.get(url)
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/two-factor/setup/?next=")


def test_staff_with_a_device_but_an_unverified_session_are_sent_to_verify() -> None:
    staff = UserFactory(email="reviewer@kraken.test", is_staff=True, is_superuser=True)
    totp_device_create(user=staff, confirmed=True)
    client = Client()
    client.force_login(staff)
    response = client.get(INDEX, follow=True)
    (last, _status) = response.redirect_chain[-1]
    assert last.startswith("/accounts/two-factor/verify/?next=")
    assert "Site administration" not in response.content.decode()


def test_the_admin_login_form_does_not_sign_anyone_in() -> None:
    staff = UserFactory(email="reviewer@kraken.test", is_staff=True, is_superuser=True)
    client = Client()
    response = client.post(
        "/staff/admin/login/?next=/staff/admin/",
        {"username": staff.email, "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    assert client.get(INDEX).status_code == 302


def test_staff_with_a_verified_session_get_in() -> None:
    staff = UserFactory(email="reviewer@kraken.test", is_staff=True, is_superuser=True)
    client = verified_client(staff)
    response = client.get(INDEX)
    assert response.status_code == 200
    assert client.get(ORGS).status_code == 200
    # Coming back through the login URL of a verified session goes straight to `next`.
    response = client.get("/staff/admin/login/?next=/staff/admin/orgs/organization/")
    assert response["Location"] == ORGS


def test_a_login_redirect_never_leaves_the_site() -> None:
    staff = UserFactory(email="reviewer@kraken.test", is_staff=True)
    response = verified_client(staff).get("/staff/admin/login/?next=https://evil.example/")
    assert response["Location"] == INDEX


def test_a_verified_member_who_is_not_staff_is_refused() -> None:
    member = UserFactory(email="trader@acme.test")
    response = verified_client(member).get(INDEX, follow=True)
    assert response.status_code == 403


def test_the_two_factor_and_lockout_admins_are_registered_outside_production() -> None:
    labels = {model._meta.app_label for model in admin.site._registry}
    assert {"otp_totp", "otp_static", "axes"} <= labels


REGISTERED = """
import json, django
django.setup()
from django.contrib import admin
print(json.dumps(sorted({m._meta.label for m in admin.site._registry})))
"""


def test_production_registers_no_two_factor_or_lockout_admin() -> None:
    result = run_python(REGISTERED, production_env())
    assert result.returncode == 0, result.stderr
    labels: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    apps = {label.split(".")[0] for label in labels}
    assert not apps & {"otp_totp", "otp_static", "axes"}
    assert "vault.Credential" in labels
    assert "orgs.Organization" in labels
