"""Invitations to internationalised domain names: every spelling of the address is one address,
the mail goes out with the domain's ASCII form, and the invitee signs in with either form."""

from __future__ import annotations

import contextlib
import importlib
import io
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.core.emails import email_normalize
from apps.orgs.models import Invitation, Membership
from apps.orgs.permissions import Role
from apps.orgs.services import invitations
from tests.conftest import verified_client
from tests.factories import OrganizationFactory, UserFactory
from tests.orgs.conftest import invitation_links
from tests.orgs.test_invitations import NEW_PASSWORD, invite

pytestmark = pytest.mark.django_db

user_migration = importlib.import_module("apps.accounts.migrations.0005_email_normalize")
invitation_migration = importlib.import_module(
    "apps.orgs.migrations.0005_invitation_email_normalize"
)

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


def test_an_invitation_to_an_idn_is_sent_and_accepted(owner, client_for, committing) -> None:
    # An owner invites: an admin's invitation as trader would wait for an owner's approval
    # (apps.approvals.role_grants), which tests/approvals covers with IDN addresses too.
    response = invite(client_for(owner), owner.org, committing, DECOMPOSED)
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
    assert Membership.objects.filter(user=user, org=owner.org).exists()

    # Either spelling signs in.
    for typed in (ASCII, UNICODE.upper()):
        response = Client().post(
            reverse("accounts:login"), {"email": typed, "password": NEW_PASSWORD}
        )
        assert response.status_code == 302, typed


def test_the_ascii_form_of_an_invited_address_is_the_same_address(
    owner, client_for, committing
) -> None:
    invite(client_for(owner), owner.org, committing, UNICODE)
    response = invite(client_for(owner), owner.org, committing, ASCII)
    assert invitations.ALREADY_INVITED in response.content.decode()
    assert Invitation.objects.count() == 1


def test_an_account_under_one_spelling_accepts_an_invitation_to_another(
    owner, client_for, committing
) -> None:
    user: Any = UserFactory(email=UNICODE)
    invite(client_for(owner), owner.org, committing, ASCII, Role.APPROVER)
    [(path, _token)] = invitation_links()
    response = verified_client(user).post(path)
    assert response.status_code == 302
    assert Membership.objects.get(user=user, org=owner.org).role == Role.APPROVER


def test_an_invitation_stored_under_another_spelling_is_offered_to_its_invitee(
    owner, client_for, committing
) -> None:
    """An invitation issued before addresses were normalised (stored in the ASCII form) is the
    same address as the account's: the page offers it, as the service accepts it."""
    user: Any = UserFactory(email=UNICODE)
    invite(client_for(owner), owner.org, committing, UNICODE, Role.APPROVER)
    Invitation.objects.update(email="Anna@XN--BCHER-KVA.example")
    [(path, _token)] = invitation_links()
    client = verified_client(user)

    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=user, org=owner.org).role == Role.APPROVER


def test_the_data_migrations_normalise_stored_addresses(admin) -> None:
    anna: Any = UserFactory(email="Anna@XN--BCHER-KVA.example")
    plain: Any = UserFactory(email="Plain@Example.TEST")
    # Two accounts that are one address: both left as they are, with a warning.
    twins = [
        UserFactory(email="ops@xn--bcher-kva.example"),
        UserFactory(email="ops@bücher.example"),
    ]
    other: Any = OrganizationFactory(slug="other-fund")
    now = timezone.now()
    later = now + timedelta(days=7)
    open_one = Invitation.objects.create(
        org=admin.org, email=DECOMPOSED, role=Role.TRADER, token_hash="a" * 64, expires_at=later
    )
    elsewhere = Invitation.objects.create(
        org=other, email=ASCII, role=Role.TRADER, token_hash="b" * 64, expires_at=later
    )
    open_twins = [
        Invitation.objects.create(
            org=admin.org, email=email, role=Role.TRADER, token_hash=c * 64, expires_at=later
        )
        for email, c in (("Bo@xn--bcher-kva.example", "c"), ("bo@bücher.example", "d"))
    ]
    closed = Invitation.objects.create(
        org=admin.org,
        email="BO@BÜCHER.example",
        role=Role.TRADER,
        token_hash="e" * 64,
        expires_at=later,
        revoked_at=now,
    )
    out = io.StringIO()

    with contextlib.redirect_stdout(out):
        user_migration.forward(apps, None)
        invitation_migration.forward(apps, None)

    def email(row: Any) -> str:
        row.refresh_from_db()
        return str(row.email)

    assert [email(anna), email(plain)] == [UNICODE, "plain@example.test"]
    assert [email(u) for u in twins] == ["ops@xn--bcher-kva.example", "ops@bücher.example"]
    assert [email(open_one), email(elsewhere)] == [UNICODE, UNICODE]
    assert [email(i) for i in open_twins] == ["Bo@xn--bcher-kva.example", "bo@bücher.example"]
    assert email(closed) == "bo@bücher.example"
    warnings = out.getvalue().splitlines()
    assert warnings == [
        user_migration.COLLISION.format(
            ids=sorted(u.pk for u in twins), address="ops@bücher.example"
        ),
        invitation_migration.COLLISION.format(
            ids=sorted(i.pk for i in open_twins), org=admin.org.pk, address="bo@bücher.example"
        ),
    ]
