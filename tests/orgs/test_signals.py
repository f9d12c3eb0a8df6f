"""orgs announces member removal and role changes to the layers above it (apps.orgs.signals),
inside the service's transaction, so a receiver's writes commit or roll back with the change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.dispatch import Signal

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from apps.orgs.signals import membership_removed, membership_role_changed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard() -> Iterator[list[dict[str, Any]]]:
    """What a receiver in a higher layer would be told, and whether it ran in a transaction."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        pk = kwargs["membership"].pk
        calls.append(
            {
                **kwargs,
                "membership_id": pk,  # the instance loses its pk once deleted
                "in_transaction": connection.in_atomic_block,
                "exists": Membership.objects.filter(pk=pk).exists(),
            }
        )

    signals: list[Signal] = [membership_removed, membership_role_changed]
    for signal in signals:
        signal.connect(receiver, dispatch_uid="test-heard")
    yield calls
    for signal in signals:
        signal.disconnect(dispatch_uid="test-heard")


def test_a_role_change_is_announced_with_the_old_role_inside_the_transaction(
    owner: Membership, trader: Membership, heard: list[dict[str, Any]]
) -> None:
    memberships.membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    [call] = heard
    assert call["membership"].pk == trader.pk
    assert call["membership"].role == Role.VIEWER
    assert call["old_role"] == Role.TRADER
    assert call["actor"] == owner
    assert call["in_transaction"]


def test_a_removal_is_announced_while_the_membership_still_exists(
    owner: Membership, trader: Membership, heard: list[dict[str, Any]]
) -> None:
    memberships.membership_remove(membership=trader, actor=owner)

    [call] = heard
    assert call["membership_id"] == trader.pk
    assert call["in_transaction"]
    assert call["exists"]  # receivers can still follow its relations (the vault's keys)
    assert not Membership.objects.filter(pk=trader.pk).exists()


def test_an_unchanged_role_announces_nothing(
    owner: Membership, trader: Membership, heard: list[dict[str, Any]]
) -> None:
    memberships.membership_change_role(membership=trader, role=Role.TRADER, actor=owner)

    assert heard == []
