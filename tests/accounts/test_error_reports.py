"""Passwords and codes posted to the sign-in, 2FA and invitation forms never reach an error report.

Django's error reporter (the debug page, the admins' error emails) prints a request's POST data
unless the view marks fields sensitive; these tests read the POST data as it would print it.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from apps.orgs.services.invitations import invitation_create
from tests.conftest import verified_client
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

CLEANSED = SafeExceptionReporterFilter.cleansed_substitute


def reported_post(response) -> dict[str, str]:
    return dict(SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request).items())


def test_the_sign_in_password_is_hidden_from_error_reports(trader) -> None:
    response = Client().post(
        reverse("accounts:login"), {"email": trader.user.email, "password": PASSWORD}
    )

    reported = reported_post(response)
    assert reported["password"] == CLEANSED
    assert reported["email"] == trader.user.email


@pytest.mark.parametrize("url_name", ["accounts:two-factor-verify", "accounts:step-up"])
def test_second_factor_codes_are_hidden_from_error_reports(trader, url_name) -> None:
    response = verified_client(trader.user).post(reverse(url_name), {"code": "12345678"})

    assert reported_post(response)["code"] == CLEANSED


def test_a_new_members_password_is_hidden_from_error_reports(
    owner, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(org=owner.org, email="new@example.test", role="viewer", actor=owner)
    path = next(word for word in str(mailoutbox[0].body).split() if "/invitations/" in word).split(
        "://", 1
    )[1]
    path = path[path.index("/") :]
    data = {
        "first_name": "New",
        "last_name": "Person",
        "password1": "a long and unusual passphrase 42",
        "password2": "a long and unusual passphrase 42",
    }

    response = Client().post(path, data)

    reported = reported_post(response)
    assert reported["password1"] == CLEANSED
    assert reported["password2"] == CLEANSED
