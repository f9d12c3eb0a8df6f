"""List pages cost the same number of queries however many rows they show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import audit_record
from apps.orgs.models import Invitation, Membership, Organization
from apps.orgs.permissions import Role
from tests.factories import MembershipFactory


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def _grow(org: Organization, owner: Membership, n: int) -> None:
    for _ in range(n):
        member = MembershipFactory(org=org, role=Role.TRADER)
        Invitation.objects.create(
            org=org,
            email=f"invited-{member.pk}@example.test",
            role=Role.VIEWER,
            token_hash=f"probe-{member.pk}",
            invited_by=owner.user,
            expires_at=timezone.now() + timedelta(days=1),
        )
        audit_record(action="probe.row", actor=owner, org=org, detail={"n": 1})


def test_members_list_queries_do_not_grow_with_members(
    org: Organization, owner: Membership, client_for: Callable[[Membership], Client]
) -> None:
    client = client_for(owner)
    url = reverse("orgs:member-list", kwargs={"org": org.slug})
    _queries(client, url)
    before = _queries(client, url)
    _grow(org, owner, 5)
    assert _queries(client, url) == before


def test_dashboard_queries_do_not_grow_with_members(
    org: Organization, owner: Membership, client_for: Callable[[Membership], Client]
) -> None:
    client = client_for(owner)
    url = reverse("orgs:dashboard", kwargs={"org": org.slug})
    _queries(client, url)
    before = _queries(client, url)
    _grow(org, owner, 5)
    assert _queries(client, url) == before


def test_audit_list_queries_do_not_grow_with_records(
    org: Organization, owner: Membership, client_for: Callable[[Membership], Client]
) -> None:
    client = client_for(owner)
    url = reverse("audit:record-list", kwargs={"org": org.slug})
    _queries(client, url)
    before = _queries(client, url)
    _grow(org, owner, 5)
    assert _queries(client, url) == before


def test_an_htmx_role_change_costs_the_same_however_many_members(
    org: Organization,
    owner: Membership,
    trader: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    client = client_for(owner)
    url = reverse("orgs:member-role", kwargs={"org": org.slug, "pk": trader.pk})

    def change(role: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(url, {"role": role}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert f'id="member-{trader.pk}"' in response.text
        return len(captured.captured_queries)

    change(Role.VIEWER)
    before = change(Role.TRADER)
    _grow(org, owner, 5)
    assert change(Role.VIEWER) == before


def test_members_table_shows_2fa_and_last_sign_in_without_a_query_per_member(
    org: Organization, owner: Membership, client_for: Callable[[Membership], Client]
) -> None:
    from apps.accounts.services import totp_device_create

    client = client_for(owner)
    url = reverse("orgs:member-list", kwargs={"org": org.slug})
    _queries(client, url)
    before = _queries(client, url)
    signed_in = timezone.now() - timedelta(days=2)
    with_2fa = []
    for n in range(4):
        member = MembershipFactory(org=org, role=Role.TRADER)
        member.user.last_login = signed_in
        member.user.save(update_fields=["last_login"])
        if n % 2 == 0:
            totp_device_create(user=member.user, confirmed=True)
            with_2fa.append(member)
    # An unconfirmed device is not 2FA.
    totp_device_create(user=member.user, confirmed=False, name="pending")

    assert _queries(client, url) == before
    rows = {m.pk: m for m in client.get(url).context["members"]}
    assert {pk for pk, m in rows.items() if m.has_2fa} == {owner.pk, *(m.pk for m in with_2fa)}
    html = client.get(url).content.decode()
    assert signed_in.strftime("%Y-%m-%d") in html


# Every signed-in organization page pays for its session, user, 2FA device and membership, for
# the organization switcher in the top bar, and for the header's counts (unread notifications
# and approvals waiting, one query); these are the pages' own queries on top.
SIGNED_IN_QUERIES = 6


def test_the_overview_and_audit_pages_stay_within_their_query_budget(
    org: Organization,
    owner: Membership,
    client_for: Callable[[Membership], Client],
    django_assert_max_num_queries: Any,
) -> None:
    client = client_for(owner)
    _grow(org, owner, 5)
    pages = {
        # members count, pending invitations; the home's panels, each a fixed number of queries
        # whatever the rows: approvals waiting for me (1); the member's keys, their watchlist,
        # recent activity (3); desk: the
        # accounts, open orders (2); treasury: accounts, the value series, withdrawals,
        # transfers (4); staking: accounts (1, then one aggregate); workflows: runs waiting for
        # me, recent failures, next runs (3)
        reverse("orgs:dashboard", kwargs={"org": org.slug}): 16,
        # the actor filter's choices, one page of records
        reverse("audit:record-list", kwargs={"org": org.slug}): 2,
    }
    for url, own in pages.items():
        client.get(url)  # the first request of a session records when it was last seen
        with django_assert_max_num_queries(SIGNED_IN_QUERIES + own):
            assert client.get(url).status_code == 200
