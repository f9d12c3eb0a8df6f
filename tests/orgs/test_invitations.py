from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.orgs.forms import PASSWORDS_DIFFER
from apps.orgs.models import Invitation, Membership
from apps.orgs.permissions import Role
from apps.orgs.selectors import token_hash
from apps.orgs.services import invitations
from tests.conftest import verified_client
from tests.factories import PASSWORD, UserFactory
from tests.orgs.conftest import invitation_links

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long and unusual passphrase 42"


def invite(client: Client, org: Any, committing: Any, email: str, role: str = Role.TRADER) -> Any:
    with committing():
        return client.post(
            reverse("orgs:invitation-create", kwargs={"org": org.slug}),
            {"email": email, "role": role},
        )


def test_an_owner_invites_by_email_and_the_email_holds_a_single_use_link(
    owner, client_for, committing
) -> None:
    response = invite(client_for(owner), owner.org, committing, "New.Person@Example.test")

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "new.person@example.test"
    assert invitation.role == Role.TRADER
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.test"]
    assert "Acme Capital" in mail.outbox[0].subject
    [(path, token)] = invitation_links()
    assert path == reverse("invitations:accept", kwargs={"token": token})
    # Only the hash is stored: the token itself is in the email and nowhere else.
    assert invitation.token_hash == token_hash(token)
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    record = AuditRecord.objects.get(action="invitation.create")
    assert token not in str(record.detail)


def test_a_new_person_sets_name_and_password_and_joins(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "newcomer@example.test")
    [(path, _token)] = invitation_links()
    visitor = Client()

    page = visitor.get(path)
    assert page.status_code == 200
    assert "Join Acme Capital" in page.content.decode()

    response = visitor.post(
        path,
        {
            "first_name": "Nia",
            "last_name": "Newcomer",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("orgs:dashboard", kwargs={"org": "acme"})
    user = get_user_model().objects.get(email="newcomer@example.test")
    assert user.check_password(NEW_PASSWORD)
    assert user.get_full_name() == "Nia Newcomer"
    assert Membership.objects.get(user=user).role == Role.TRADER
    assert AuditRecord.objects.filter(action="membership.join", actor_id=user.pk).exists()


def test_the_link_works_only_once(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "newcomer@example.test")
    [(path, _token)] = invitation_links()
    data = {
        "first_name": "A",
        "last_name": "B",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    assert Client().post(path, data).status_code == 302

    again = Client().get(path)
    assert again.status_code == 410
    assert invitations.INVITATION_MESSAGES["accepted"] in again.content.decode()


def test_a_signed_in_person_with_the_invited_address_joins(owner, client_for, committing) -> None:
    user: Any = UserFactory(email="colleague@example.test")
    invite(client_for(owner), owner.org, committing, "colleague@example.test", Role.APPROVER)
    [(path, _token)] = invitation_links()
    client = verified_client(user)

    assert "Join Acme Capital" in client.get(path).content.decode()
    response = client.post(path)

    assert response.status_code == 302
    assert Membership.objects.get(user=user, org=owner.org).role == Role.APPROVER
    user.refresh_from_db()
    assert user.current_org_id == owner.org_id


def test_someone_signed_in_with_another_address_cannot_use_the_link(
    owner, outsider, client_for, committing
) -> None:
    invite(client_for(owner), owner.org, committing, "colleague@example.test")
    [(path, _token)] = invitation_links()

    response = client_for(outsider).post(path)

    assert response.status_code == 403
    assert invitations.INVITATION_WRONG_USER in response.content.decode()
    assert not Membership.objects.filter(user=outsider.user, org=owner.org).exists()


def test_a_visitor_whose_address_has_an_account_is_asked_to_sign_in(
    owner, client_for, committing
) -> None:
    UserFactory(email="colleague@example.test")
    invite(client_for(owner), owner.org, committing, "colleague@example.test")
    [(path, _token)] = invitation_links()

    response = Client().get(path)

    assert response.status_code == 200
    body = response.content.decode()
    assert invitations.ACCOUNT_EXISTS in body
    assert reverse("accounts:login") + "?next=" + path in body
    # Posting a password form cannot take over the existing account.
    Client().post(
        path, {"first_name": "X", "last_name": "Y", "password1": "x" * 20, "password2": "x" * 20}
    )
    assert get_user_model().objects.get(email="colleague@example.test").check_password(PASSWORD)


def test_an_expired_link_says_so_and_admits_nobody(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "late@example.test")
    [(path, _token)] = invitation_links()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    data = {
        "first_name": "A",
        "last_name": "B",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }

    response = Client().post(path, data)

    assert response.status_code == 410
    assert invitations.INVITATION_MESSAGES["expired"] in response.content.decode()
    assert not get_user_model().objects.filter(email="late@example.test").exists()


def test_a_revoked_link_says_so(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "gone@example.test")
    [(path, _token)] = invitation_links()
    invitation = Invitation.objects.get()

    response = client_for(owner).post(
        reverse("orgs:invitation-revoke", kwargs={"org": "acme", "pk": invitation.pk})
    )

    assert response.status_code == 302
    page = Client().get(path)
    assert page.status_code == 410
    assert invitations.INVITATION_MESSAGES["revoked"] in page.content.decode()
    assert AuditRecord.objects.filter(action="invitation.revoke").exists()


def test_resending_sends_a_new_link_and_retires_the_old_one(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "slow@example.test")
    invitation = Invitation.objects.get()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))

    with committing():
        client_for(owner).post(
            reverse("orgs:invitation-resend", kwargs={"org": "acme", "pk": invitation.pk})
        )

    [(old_path, _old), (new_path, _new)] = invitation_links()
    assert old_path != new_path
    old = Client().get(old_path)
    assert old.status_code == 404
    assert invitations.INVITATION_INVALID in old.content.decode()
    assert Client().get(new_path).status_code == 200


def test_an_unknown_link_is_not_valid(db: Any) -> None:
    response = Client().get(reverse("invitations:accept", kwargs={"token": "made-up"}))
    assert response.status_code == 404
    assert invitations.INVITATION_INVALID in response.content.decode()


def test_an_admin_cannot_invite_an_owner_but_an_owner_can(
    owner, admin, client_for, committing
) -> None:
    refused = invite(client_for(admin), admin.org, committing, "boss@example.test", Role.OWNER)
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    assert not Invitation.objects.exists()

    allowed = invite(client_for(owner), owner.org, committing, "boss@example.test", Role.OWNER)
    assert allowed.status_code == 302
    assert Invitation.objects.get().role == Role.OWNER


def test_inviting_a_member_or_a_pending_address_again_is_refused(
    owner, trader, client_for, committing
) -> None:
    member = invite(client_for(owner), owner.org, committing, "TRADER@acme.test")
    assert member.status_code == 400
    assert invitations.ALREADY_MEMBER in member.content.decode()

    invite(client_for(owner), owner.org, committing, "twice@example.test")
    again = invite(client_for(owner), owner.org, committing, "twice@example.test")
    assert again.status_code == 400
    assert invitations.ALREADY_INVITED in again.content.decode()
    assert Invitation.objects.count() == 1


def test_an_expired_invitation_does_not_block_a_new_one(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "again@example.test")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = invite(client_for(owner), owner.org, committing, "again@example.test")

    assert response.status_code == 302
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1


def test_a_new_persons_passwords_must_match_and_be_strong(owner, client_for, committing) -> None:
    invite(client_for(owner), owner.org, committing, "weak@example.test")
    [(path, _token)] = invitation_links()

    differ = Client().post(
        path, {"first_name": "A", "last_name": "B", "password1": NEW_PASSWORD, "password2": "x"}
    )
    weak = Client().post(
        path, {"first_name": "A", "last_name": "B", "password1": "12345", "password2": "12345"}
    )

    assert differ.status_code == 400
    assert PASSWORDS_DIFFER in differ.content.decode()
    assert weak.status_code == 400
    assert "too short" in weak.content.decode()
    assert not get_user_model().objects.filter(email="weak@example.test").exists()


def test_the_members_page_lists_pending_invitations_with_resend_and_revoke(
    owner, client_for, committing
) -> None:
    invite(client_for(owner), owner.org, committing, "pending@example.test")
    body = client_for(owner).get(reverse("orgs:member-list", kwargs={"org": "acme"})).content
    text = body.decode()
    assert "pending@example.test" in text
    assert "Resend" in text
    assert "Revoke" in text
