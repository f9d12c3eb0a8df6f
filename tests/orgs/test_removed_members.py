"""A removed membership is kept, marked removed, and is a non-member everywhere: pages, counts,
the organization switcher, the owner rules; re-invited, the same row becomes active again."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability, Role
from apps.orgs.selectors import memberships_of, org_members
from apps.orgs.services import invitations
from apps.orgs.services.memberships import (
    LAST_OWNER_DEMOTE,
    MEMBER_GONE,
    membership_change_role,
    membership_remove,
)
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_removed_membership_row_stays_with_who_removed_it_and_when(owner, trader) -> None:
    membership_remove(membership=trader, actor=owner)

    kept = Membership.all_objects.get(pk=trader.pk)
    assert kept.status == Membership.Status.REMOVED
    assert kept.removed_by == owner.user
    assert kept.removed_at is not None
    assert kept.role == Role.TRADER  # the role they had, for the record
    assert not kept.can(Capability.VIEW)


def test_a_removed_member_gets_404_on_every_org_page(owner, trader, client_for) -> None:
    client = client_for(trader)
    assert client.get(reverse("orgs:dashboard", kwargs={"org": "acme"})).status_code == 200

    membership_remove(membership=trader, actor=owner)

    for name in ("orgs:dashboard", "market:overview", "vault:credential-list", "audit:record-list"):
        assert client.get(reverse(name, kwargs={"org": "acme"})).status_code == 404, name


def test_a_removed_member_is_not_listed_counted_or_offered_in_the_switcher(
    owner, trader, client_for
) -> None:
    membership_remove(membership=trader, actor=owner)

    assert list(org_members(org=owner.org)) == [owner]
    assert list(memberships_of(user=trader.user)) == []
    response = client_for(owner).get(reverse("orgs:member-list", kwargs={"org": "acme"}))
    assert trader.user.email not in response.content.decode()
    dashboard = client_for(owner).get(reverse("orgs:dashboard", kwargs={"org": "acme"}))
    assert dashboard.context["members_count"] == 1


def test_a_removed_member_cannot_be_removed_or_given_a_role_again(owner, trader) -> None:
    membership_remove(membership=trader, actor=owner)

    with pytest.raises(ValidationError, match=MEMBER_GONE):
        membership_remove(membership=trader, actor=owner)
    with pytest.raises(ValidationError, match=MEMBER_GONE):
        membership_change_role(membership=trader, role=Role.OWNER, actor=owner)


def test_a_removed_member_cannot_act(owner, admin, viewer) -> None:
    membership_remove(membership=admin, actor=owner)

    with pytest.raises(Exception, match="Your role does not allow this"):
        membership_remove(membership=viewer, actor=admin)


def test_a_removed_owner_does_not_count_as_an_owner(owner) -> None:
    second = MembershipFactory(org=owner.org, role=Role.OWNER, user=UserFactory())
    membership_remove(membership=second, actor=owner)

    with pytest.raises(ValidationError, match=LAST_OWNER_DEMOTE):
        membership_change_role(membership=owner, role=Role.VIEWER, actor=owner)


def test_a_removed_member_can_be_invited_again_and_the_same_row_becomes_active(
    owner, trader
) -> None:
    membership_remove(membership=trader, actor=owner)

    invitation = invitations.invitation_issue(
        org=owner.org,
        email=trader.user.email,
        role=Role.VIEWER,
        invited_by=owner.user,
        request=None,
    )
    joined = invitations.invitation_accept(invitation=invitation, user=trader.user)

    assert joined.pk == trader.pk
    joined.refresh_from_db()
    assert joined.status == Membership.Status.ACTIVE
    assert joined.role == Role.VIEWER
    assert joined.removed_at is None
    assert joined.removed_by is None
    assert Membership.all_objects.filter(org=owner.org, user=trader.user).count() == 1
    record = AuditRecord.objects.get(action="membership.join")
    assert record.detail["rejoined"] is True
    assert record.detail["role"] == Role.VIEWER
