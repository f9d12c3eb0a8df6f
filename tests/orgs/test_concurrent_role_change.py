"""A role change that waits while the member is being removed answers with a message, not a
500: the service says the member is gone, and the row it would redraw no longer exists."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils.html import escape

from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.services import memberships

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def test_an_htmx_role_change_for_a_member_removed_meanwhile_says_they_are_gone(
    admin: Membership, trader: Membership, client_for: Any
) -> None:
    client = client_for(admin)
    url = reverse("orgs:member-role", kwargs={"org": trader.org.slug, "pk": trader.pk})
    responses: list[Any] = []

    def change_role() -> None:
        try:
            responses.append(
                client.post(url, {"role": Role.VIEWER}, headers={"HX-Request": "true"})
            )
        finally:
            connection.close()

    thread = threading.Thread(target=change_role)
    with transaction.atomic():
        # A removal holds the organization's lock and has marked the member removed, not yet
        # committed: the view still finds the member, then its service waits for the lock.
        Organization.objects.select_for_update().get(pk=trader.org_id)
        Membership.objects.filter(pk=trader.pk).update(status=Membership.Status.REMOVED)
        thread.start()
        for _ in range(200):
            if _waiting_on_a_lock():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the role change never waited for the organization's lock")
    thread.join(timeout=30)

    assert len(responses) == 1
    response = responses[0]
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="member-{trader.pk}"')
    assert escape(memberships.MEMBER_GONE) in body
    assert Membership.all_objects.get(pk=trader.pk).role == Role.TRADER
