"""Handing over or taking away ownership needs a fresh second factor, whichever way it's done."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.orgs.models import Invitation, Membership
from apps.orgs.permissions import Role
from tests.conftest import verified_client
from tests.orgs.conftest import stepped_up

pytestmark = pytest.mark.django_db

STEP_UP = reverse("accounts:step-up")


def remove_url(member: Membership) -> str:
    return reverse("orgs:member-remove", kwargs={"org": member.org.slug, "pk": member.pk})


def invite_url(member: Membership) -> str:
    return reverse("orgs:invitation-create", kwargs={"org": member.org.slug})


def make_owner(member: Membership) -> Membership:
    member.role = Role.OWNER
    member.save(update_fields=["role"])
    return member


def test_removing_another_owner_needs_a_fresh_second_factor(owner, admin) -> None:
    other_owner = make_owner(admin)

    response = verified_client(owner.user).post(remove_url(other_owner))

    assert response.status_code == 302
    assert response["Location"].startswith(STEP_UP)
    assert Membership.objects.filter(pk=other_owner.pk).exists()


def test_an_owner_removes_another_owner_after_stepping_up(owner, admin) -> None:
    other_owner = make_owner(admin)

    stepped_up(verified_client(owner.user)).post(remove_url(other_owner))

    assert not Membership.objects.filter(pk=other_owner.pk).exists()


def test_removing_an_ordinary_member_needs_no_step_up(owner, trader) -> None:
    verified_client(owner.user).post(remove_url(trader))

    assert not Membership.objects.filter(pk=trader.pk).exists()


def test_inviting_an_owner_needs_a_fresh_second_factor(owner) -> None:
    data = {"email": "boss@example.test", "role": Role.OWNER}

    stale = verified_client(owner.user).post(invite_url(owner), data)

    assert stale.status_code == 302
    assert stale["Location"].startswith(STEP_UP)
    assert not Invitation.objects.exists()

    stepped_up(verified_client(owner.user)).post(invite_url(owner), data)
    assert Invitation.objects.get().role == Role.OWNER


def test_inviting_a_trader_needs_no_step_up(owner) -> None:
    data = {"email": "desk@example.test", "role": Role.TRADER}

    verified_client(owner.user).post(invite_url(owner), data)

    assert Invitation.objects.get().role == Role.TRADER
