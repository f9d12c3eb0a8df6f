"""Two owners demoting each other at the same moment leave exactly one owner."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_owners_demoting_each_other_at_once_leave_one_owner(owner: Membership) -> None:
    second = MembershipFactory(org=owner.org, role=Role.OWNER, user=UserFactory())
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def demote(target: Membership, actor: Membership) -> None:
        try:
            barrier.wait(timeout=5)
            memberships.membership_change_role(membership=target, role=Role.ADMIN, actor=actor)
            outcomes.append("demoted")
        except ValidationError as error:
            outcomes.append(error.messages[0])
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(second, owner)),
        threading.Thread(target=demote, args=(owner, second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(outcomes) == sorted(["demoted", memberships.ONLY_OWNER_MANAGES_OWNERS])
    assert Membership.objects.filter(org=owner.org, role=Role.OWNER).count() == 1
