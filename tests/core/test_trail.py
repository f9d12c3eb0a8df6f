"""The kernel's audit port (apps.core.trail): accounts, orgs and the vault record through it,
and the audit app's recorder writes the chained row in the caller's transaction."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.audit.models import AuditRecord
from apps.core import trail
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships

pytestmark = pytest.mark.django_db


def test_a_change_made_through_the_port_lands_in_the_organizations_chain(
    owner: Membership, trader: Membership
) -> None:
    memberships.membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    record = AuditRecord.objects.get(action="membership.role_change")
    assert record.org_id == owner.org_id
    assert record.actor_id == owner.user_id
    assert record.detail["to"] == Role.VIEWER


def test_without_a_recorder_the_change_is_refused_rather_than_left_unaudited(
    owner: Membership, trader: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the audit app were not installed: nothing has registered a recorder.
    monkeypatch.setattr(trail, "_recorder", None)

    with pytest.raises(ImproperlyConfigured, match="unaudited"):
        memberships.membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    trader.refresh_from_db()
    assert trader.role == Role.TRADER
    assert not AuditRecord.objects.filter(action="membership.role_change").exists()
