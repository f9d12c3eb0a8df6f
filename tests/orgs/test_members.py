from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from tests.conftest import verified_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def role_url(member: Membership) -> str:
    return reverse("orgs:member-role", kwargs={"org": member.org.slug, "pk": member.pk})


def remove_url(member: Membership) -> str:
    return reverse("orgs:member-remove", kwargs={"org": member.org.slug, "pk": member.pk})


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def test_an_admin_changes_a_members_role(admin, trader, client_for) -> None:
    # To a role without powerful capabilities: an admin's grant of one waits for an owner
    # (tests/approvals/test_role_grants.py).
    response = client_for(admin).post(role_url(trader), {"role": Role.VIEWER})

    assert response.status_code == 302
    trader.refresh_from_db()
    assert trader.role == Role.VIEWER
    record = AuditRecord.objects.get(action="membership.role_change")
    assert record.detail == {"member": "trader@acme.test", "from": "trader", "to": "viewer"}


def test_an_admin_cannot_make_someone_an_owner(admin, trader, client_for) -> None:
    response = client_for(admin).post(role_url(trader), {"role": Role.OWNER}, follow=True)

    trader.refresh_from_db()
    assert trader.role == Role.TRADER
    assert memberships.ONLY_OWNER_MANAGES_OWNERS in messages_of(response)


def test_an_admin_cannot_change_or_remove_an_owner(owner, admin, client_for) -> None:
    MembershipFactory(org=owner.org, role=Role.OWNER)  # not the last owner either
    changed = client_for(admin).post(role_url(owner), {"role": Role.VIEWER}, follow=True)
    removed = client_for(admin).post(remove_url(owner), follow=True)

    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert memberships.ONLY_OWNER_MANAGES_OWNERS in messages_of(changed)
    assert memberships.ONLY_OWNER_MANAGES_OWNERS in messages_of(removed)


def test_the_last_owner_can_be_neither_demoted_nor_removed(owner, client_for) -> None:
    client = client_for(owner)
    demoted = client.post(role_url(owner), {"role": Role.ADMIN}, follow=True)
    removed = client.post(remove_url(owner), follow=True)

    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert memberships.LAST_OWNER_DEMOTE in messages_of(demoted)
    assert memberships.LAST_OWNER_REMOVE in messages_of(removed)


def test_an_owner_can_step_down_once_there_is_another_owner(owner, admin, client_for) -> None:
    client = client_for(owner)
    client.post(role_url(admin), {"role": Role.OWNER})
    client.post(role_url(owner), {"role": Role.ADMIN})

    owner.refresh_from_db()
    admin.refresh_from_db()
    assert (owner.role, admin.role) == (Role.ADMIN, Role.OWNER)


def test_removing_a_member_ends_their_access(admin, viewer, client_for) -> None:
    viewer_client = client_for(viewer)
    dashboard = reverse("orgs:dashboard", kwargs={"org": "acme"})
    assert viewer_client.get(dashboard).status_code == 200

    response = client_for(admin).post(remove_url(viewer))

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert viewer_client.get(dashboard).status_code == 404
    assert AuditRecord.objects.filter(action="membership.remove").exists()


def test_a_member_of_another_organization_cannot_be_touched(admin, outsider, client_for) -> None:
    url = reverse("orgs:member-remove", kwargs={"org": "acme", "pk": outsider.pk})
    assert client_for(admin).post(url).status_code == 404
    assert Membership.objects.filter(pk=outsider.pk).exists()


def test_a_nonsense_role_is_refused_with_a_message(admin, trader, client_for) -> None:
    response = client_for(admin).post(role_url(trader), {"role": "emperor"}, follow=True)
    trader.refresh_from_db()
    assert trader.role == Role.TRADER
    assert any("valid choice" in m for m in messages_of(response))


def test_an_htmx_role_change_returns_only_the_members_row(admin, trader, client_for) -> None:
    response = client_for(admin).post(
        role_url(trader), {"role": Role.VIEWER}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<tr id="member-{trader.pk}"')
    assert "<html" not in body
    assert "trader@acme.test is now Viewer." in body


def test_an_htmx_role_change_that_breaks_a_rule_shows_the_reason_in_the_row(
    owner, client_for
) -> None:
    response = client_for(owner).post(
        role_url(owner), {"role": Role.VIEWER}, headers={"HX-Request": "true"}
    )
    assert escape(memberships.LAST_OWNER_DEMOTE) in response.content.decode()


def test_the_members_page_shows_joined_dates_in_the_readers_time_zone(
    admin, trader, client_for
) -> None:
    admin.user.time_zone = "Asia/Tokyo"
    admin.user.save()
    Membership.objects.filter(pk=trader.pk).update(
        created_at=dt.datetime(2026, 1, 31, 20, 30, tzinfo=dt.UTC)
    )

    body = client_for(admin).get(reverse("orgs:member-list", kwargs={"org": "acme"})).content

    assert "2026-02-01 05:30" in body.decode()


def test_the_members_page_works_without_javascript(admin, trader, client_for) -> None:
    body = client_for(admin).get(reverse("orgs:member-list", kwargs={"org": "acme"})).content
    text = body.decode()
    # Plain forms with an action and a submit button; htmx only enhances them.
    assert f'action="{role_url(trader)}"' in text
    assert f'action="{remove_url(trader)}"' in text
    assert 'type="submit"' in text


def test_an_admin_is_not_offered_the_owner_role(admin, trader, client_for) -> None:
    text = client_for(admin).get(reverse("orgs:member-list", kwargs={"org": "acme"})).content
    assert b'value="owner"' not in text


def test_a_person_can_belong_to_several_organizations(owner, outsider, client_for) -> None:
    MembershipFactory(org=outsider.org, user=owner.user, role=Role.VIEWER)
    client = client_for(owner)

    client.get(reverse("orgs:dashboard", kwargs={"org": "other"}))
    owner.user.refresh_from_db()
    assert owner.user.current_org == outsider.org

    page = client.get(reverse("orgs:dashboard", kwargs={"org": "acme"}))
    owner.user.refresh_from_db()
    assert owner.user.current_org == owner.org
    assert "Other Fund" in page.content.decode()


def test_a_removed_users_remembered_organization_is_forgotten(owner, viewer, client_for) -> None:
    client_for(viewer).get(reverse("orgs:dashboard", kwargs={"org": "acme"}))
    client_for(owner).post(remove_url(viewer))
    viewer.user.refresh_from_db()
    assert viewer.user.current_org is None


def test_roles_are_never_changed_by_an_outsider_role_check_bypass(admin, client_for) -> None:
    # A user with no membership at all gets 404 for every member action.
    stranger = UserFactory()
    response = verified_client(stranger).post(role_url(admin), {"role": Role.OWNER})
    assert response.status_code == 404


def test_making_someone_an_owner_needs_a_fresh_second_factor(owner, admin) -> None:
    stale = verified_client(owner.user)  # signed in with 2FA, but no recent step-up

    response = stale.post(role_url(admin), {"role": Role.OWNER})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN


def test_ordinary_role_changes_need_no_step_up(admin, trader) -> None:
    verified_client(admin.user).post(role_url(trader), {"role": Role.VIEWER})
    trader.refresh_from_db()
    assert trader.role == Role.VIEWER
