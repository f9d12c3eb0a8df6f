"""Invitations to internationalised domain names: every spelling of the address is one address,
the mail goes out with the domain's ASCII form, and the invitee signs in with either form."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.core.emails import email_normalize
from apps.orgs.models import Invitation, Membership
from apps.orgs.permissions import Role
from apps.orgs.services import invitations
from tests.conftest import verified_client
from tests.factories import UserFactory
from tests.orgs.conftest import invitation_links
from tests.orgs.test_invitations import NEW_PASSWORD, invite

pytestmark = pytest.mark.django_db

UNICODE = "anna@bücher.example"
ASCII = "anna@xn--bcher-kva.example"
DECOMPOSED = "Anna@BU\u0308CHER.example"


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        (UNICODE, UNICODE),
        (ASCII, UNICODE),
        (DECOMPOSED, UNICODE),
        ("Owner@Straße.de", "owner@straße.de"),  # IDNA 2008: ß stays ß
        ("ops@例え.テスト", "ops@例え.テスト"),
        ("Plain@Example.TEST", "plain@example.test"),
    ],
)
def test_every_spelling_of_an_address_has_one_form(typed: str, kept: str) -> None:
    assert email_normalize(typed) == kept


def test_an_invitation_to_an_idn_is_sent_and_accepted(admin, client_for, committing) -> None:
    response = invite(client_for(admin), admin.org, committing, DECOMPOSED)
    assert response.status_code == 302
    assert Invitation.objects.get().email == UNICODE
    # The message goes out: the envelope carries the ASCII form mail servers route by.
    [message] = mail.outbox
    assert message.to == [UNICODE]
    assert f"To: {ASCII}" in message.message().as_string()

    [(path, _token)] = invitation_links()
    response = Client().post(
        path,
        {
            "first_name": "Anna",
            "last_name": "Bücher",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(email=UNICODE)
    assert user.email == UNICODE
    assert Membership.objects.filter(user=user, org=admin.org).exists()

    # Either spelling signs in.
    for typed in (ASCII, UNICODE.upper()):
        response = Client().post(
            reverse("accounts:login"), {"email": typed, "password": NEW_PASSWORD}
        )
        assert response.status_code == 302, typed


def test_the_ascii_form_of_an_invited_address_is_the_same_address(
    admin, client_for, committing
) -> None:
    invite(client_for(admin), admin.org, committing, UNICODE)
    response = invite(client_for(admin), admin.org, committing, ASCII)
    assert invitations.ALREADY_INVITED in response.content.decode()
    assert Invitation.objects.count() == 1


def test_an_account_under_one_spelling_accepts_an_invitation_to_another(
    admin, client_for, committing
) -> None:
    user: Any = UserFactory(email=UNICODE)
    invite(client_for(admin), admin.org, committing, ASCII, Role.APPROVER)
    [(path, _token)] = invitation_links()
    response = verified_client(user).post(path)
    assert response.status_code == 302
    assert Membership.objects.get(user=user, org=admin.org).role == Role.APPROVER
