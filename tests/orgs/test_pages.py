from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.audit.models import AuditRecord
from apps.orgs.permissions import CAPABILITY_LABELS, Role, permission_matrix
from tests.conftest import verified_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_role_members_and_pending_invitations_to_managers(
    admin, trader, client_for
) -> None:
    from apps.orgs.models import Invitation

    Invitation.objects.create(
        org=admin.org,
        email="p@example.test",
        role=Role.VIEWER,
        token_hash="x" * 64,
        expires_at="2099-01-01T00:00Z",
    )
    url = reverse("orgs:dashboard", kwargs={"org": "acme"})

    admin_page = client_for(admin).get(url).content.decode()
    trader_page = client_for(trader).get(url).content.decode()

    assert "Admin" in admin_page
    assert "Pending invitations" in admin_page
    assert "p@example.test" in admin_page
    assert "Pending invitations" not in trader_page
    assert "p@example.test" not in trader_page
    assert CAPABILITY_LABELS["trade"] in trader_page


def test_the_permission_table_has_roles_as_columns_and_capabilities_as_rows(
    admin, client_for
) -> None:
    body = (
        client_for(admin)
        .get(reverse("orgs:permission-table", kwargs={"org": "acme"}))
        .content.decode()
    )

    for _value, label in Role.choices:
        assert f'<th scope="col">{label}</th>' in body
    for _cap, label, _allowed in permission_matrix():
        assert f'<th scope="row">{escape(label)}</th>' in body
    allowed = sum(sum(row[2]) for row in permission_matrix())
    assert body.count('aria-label="allowed"') == allowed


def test_an_owner_renames_the_organization_and_turns_off_required_2fa(owner, client_for) -> None:
    client = client_for(owner)
    response = client.post(
        reverse("orgs:settings", kwargs={"org": "acme"}), {"name": "Acme Capital LLP"}
    )

    assert response.status_code == 302
    owner.org.refresh_from_db()
    assert owner.org.name == "Acme Capital LLP"
    # Turning 2FA off loosens a safeguard: a sole owner's waits 24 hours (tested in
    # tests/approvals/test_setting_changes.py); the rest of the form is saved now.
    assert owner.org.require_2fa is True
    record = AuditRecord.objects.get(action="organization.settings")
    assert record.detail == {"changes": {"name": ["Acme Capital", "Acme Capital LLP"]}}
    page = client.get(response["Location"]).content.decode()
    assert "Settings saved." in page
    assert "applies in 24 hours unless an owner cancels it" in page


def test_an_empty_organization_name_is_refused_next_to_the_field(owner, client_for) -> None:
    response = client_for(owner).post(
        reverse("orgs:settings", kwargs={"org": "acme"}), {"name": "  ", "require_2fa": "on"}
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    owner.org.refresh_from_db()
    assert owner.org.name == "Acme Capital"


def test_changing_policies_needs_a_fresh_second_factor(owner) -> None:
    stale = verified_client(owner.user)
    url = reverse("orgs:settings", kwargs={"org": "acme"})

    assert stale.get(url).status_code == 200
    response = stale.post(url, {"name": "Acme Capital"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    owner.org.refresh_from_db()
    assert owner.org.require_2fa is True


@pytest.mark.parametrize(
    "model", ["organization", "membership", "invitation", "onboardingapplication"]
)
def test_the_admin_site_shows_the_orgs_models_read_only(model: str, owner) -> None:
    superuser = UserFactory(email="root@kraken.test", is_staff=True, is_superuser=True)
    client = verified_client(superuser)

    listing = client.get(reverse(f"admin:orgs_{model}_changelist"))
    adding = client.get(reverse(f"admin:orgs_{model}_add"))

    assert listing.status_code == 200
    assert adding.status_code == 403


def test_the_dashboard_lists_the_members_other_organizations_and_remembers_this_one(
    trader, client_for
) -> None:
    from apps.orgs.models import Membership, Organization

    elsewhere = Organization.objects.create(name="Elsewhere Fund", slug="elsewhere", country="GB")
    Membership.objects.create(org=elsewhere, user=trader.user, role=Role.VIEWER)
    client = client_for(trader)

    page = client.get(reverse("orgs:dashboard", kwargs={"org": "acme"})).content.decode()
    section = page[page.index("Your other organizations") :]
    assert reverse("orgs:dashboard", kwargs={"org": "elsewhere"}) in section
    assert reverse("orgs:dashboard", kwargs={"org": "acme"}) not in section
    trader.user.refresh_from_db()
    assert trader.user.current_org_id == trader.org_id

    alone = client.get(reverse("orgs:dashboard", kwargs={"org": "elsewhere"})).content.decode()
    assert "Acme" in alone[alone.index("Your other organizations") :]
