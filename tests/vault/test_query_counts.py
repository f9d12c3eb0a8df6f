"""The API-keys page costs the same few queries however many keys it lists (no N+1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.orgs.models import Membership
from apps.vault.models import Credential, Use
from apps.vault.services import credential_revoke

pytestmark = pytest.mark.django_db

# Session, user, 2FA device, membership, the keys (with their owners), organization switcher,
# the header's counts (unread notifications and approvals waiting, one query).
PAGE_QUERIES = 7


def test_the_keys_page_costs_the_same_queries_with_many_keys(
    client_for: Callable[[Membership], Client],
    owner: Membership,
    admin: Membership,
    store_key: Callable[..., Any],
    django_assert_max_num_queries: Any,
) -> None:
    url = f"/o/{owner.org.slug}/vault/"
    client = client_for(admin)
    store_key(admin, label="Admin read-only", use=Use.READ_ONLY)
    client.get(url)  # the first request of a session records when it was last seen
    with django_assert_max_num_queries(PAGE_QUERIES):
        assert client.get(url).status_code == 200
    for n in range(3):
        # One active key per use: the revoked ones stay listed, for the record.
        previous = Credential.objects.get(owner=admin, status=Credential.Status.ACTIVE)
        credential_revoke(credential=previous, actor=admin)
        store_key(admin, label=f"Admin key {n}", use=Use.READ_ONLY)
    store_key(owner, label="Desk trading", use=Use.TRADING, designated=True)
    store_key(owner, label="Desk funding", use=Use.FUNDING, designated=True)
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get(url)
    assert response.status_code == 200
    for label in ("Admin read-only", "Admin key 2", "Desk trading", "Desk funding"):
        assert label in response.text
