"""Keys follow least privilege and are visible to those responsible: keys only for a use the
role has, the organization's over-privilege setting (owners, step-up, audited), and the owners'
and admins' page of every member's keys, where they may revoke any of them."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approvals_run_due
from apps.audit.models import AuditRecord
from apps.orgs.models import Organization
from apps.orgs.services.organizations import (
    OVERPRIVILEGED_KEYS_OWNERS_ONLY,
    organization_update_settings,
)
from apps.vault.forms import CredentialForm
from apps.vault.models import Credential, Permission, Use
from apps.vault.policy import CALLS, NEEDED
from apps.vault.services import (
    REVOKED_BY_OVERSEER,
    USE_NOT_ALLOWED,
    KeyPurpose,
    KeyUseRefused,
    credential_key_for_task,
)
from tests.vault.conftest import new_key_pair

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs: int) -> str:
    return reverse(f"vault:{name}", kwargs={"org": "acme", **kwargs})


# --- What each use calls --------------------------------------------------------------------


def test_each_use_needs_what_its_calls_need_per_krakens_spec() -> None:
    assert NEEDED[Use.TRADING] == {
        Permission.QUERY_FUNDS,
        Permission.QUERY_OPEN,  # reconciliation: open orders
        Permission.QUERY_CLOSED,  # reconciliation: closed orders
        Permission.TRADE,
        Permission.WEBSOCKET,  # the executions channel
    }
    assert NEEDED[Use.FUNDING] == {
        Permission.QUERY_FUNDS,
        Permission.QUERY_LEDGER,  # following subaccount transfers
        Permission.WITHDRAW,
        Permission.WEBSOCKET,  # the balances channel
    }
    assert NEEDED[Use.READ_ONLY] == {Permission.QUERY_FUNDS}
    # The spec's "API Key Permissions Required" for calls whose permission is easy to get wrong.
    assert CALLS[Use.READ_ONLY]["TradeVolume"] == {Permission.QUERY_FUNDS}
    assert CALLS[Use.FUNDING]["AccountTransfer"] == {Permission.WITHDRAW}
    assert CALLS[Use.TRADING]["ClosedOrders"] == {Permission.QUERY_CLOSED}


# --- A key only for a use the role has --------------------------------------------------------


def test_a_trader_cannot_store_a_funding_key(trader, store_key) -> None:
    with pytest.raises(ValidationError) as refused:
        store_key(trader, use=Use.FUNDING)
    assert refused.value.message_dict["use"] == [
        USE_NOT_ALLOWED.format(role="trader", use="funding use", uses="trading, read only")
    ]
    assert not Credential.objects.exists()


def test_an_admin_may_store_only_a_read_only_key(admin, store_key) -> None:
    with pytest.raises(ValidationError):
        store_key(admin, use=Use.TRADING)
    credential, _ = store_key(admin, use=Use.READ_ONLY)
    assert credential.is_active


def test_the_form_offers_only_the_uses_the_role_has(admin, treasurer, owner) -> None:
    def offered(membership) -> list[str]:
        return [value for value, _ in CredentialForm(membership=membership).fields["use"].choices]

    assert offered(admin) == [Use.READ_ONLY]
    assert offered(treasurer) == [Use.FUNDING, Use.READ_ONLY]
    assert offered(owner) == [Use.TRADING, Use.FUNDING, Use.READ_ONLY]


def test_posting_a_use_the_role_lacks_is_a_form_error(trader, stepped_up_client_for) -> None:
    pair = new_key_pair()
    response = stepped_up_client_for(trader).post(
        url("credential-create"),
        {"label": "X", "api_key": pair.api_key, "secret": pair.secret, "use": Use.FUNDING},
    )
    assert response.status_code == 200
    assert not Credential.objects.exists()


# --- The organization's over-privilege setting ----------------------------------------------


def test_only_an_owner_may_allow_overprivileged_keys_and_it_is_audited(
    owner, admin, django_capture_on_commit_callbacks
) -> None:
    org = owner.org
    with pytest.raises(PermissionDenied, match=OVERPRIVILEGED_KEYS_OWNERS_ONLY):
        organization_update_settings(
            org=org,
            actor=admin,
            name=org.name,
            require_2fa=org.require_2fa,
            allow_overprivileged_keys=True,
        )
    assert not Organization.objects.get(pk=org.pk).allow_overprivileged_keys

    saved = organization_update_settings(
        org=org,
        actor=owner,
        name=org.name,
        require_2fa=org.require_2fa,
        allow_overprivileged_keys=True,
        stepped_up=True,
    )
    # A loosening: the sole owner's waits 24 hours (tests/approvals/test_setting_changes.py).
    assert saved.held
    assert not Organization.objects.get(pk=org.pk).allow_overprivileged_keys
    approval = ApprovalRequest.objects.get()
    ApprovalRequest.objects.filter(pk=approval.pk).update(not_before=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        approvals_run_due()
    assert Organization.objects.get(pk=org.pk).allow_overprivileged_keys
    record = AuditRecord.objects.get(action="organization.settings")
    assert record.detail["changes"] == {"allow_overprivileged_keys": [False, True]}
    assert record.detail["approval"] == approval.pk
    assert record.actor_email == owner.user.email


def test_an_admins_settings_form_cannot_change_the_setting(admin, stepped_up_client_for) -> None:
    response = stepped_up_client_for(admin).post(
        reverse("orgs:settings", kwargs={"org": "acme"}),
        {"name": "Acme Capital", "require_2fa": "on", "allow_overprivileged_keys": "on"},
    )
    assert response.status_code == 302
    assert not Organization.objects.get(slug="acme").allow_overprivileged_keys


def test_the_setting_needs_a_step_up(owner, client_for) -> None:
    response = client_for(owner).post(
        reverse("orgs:settings", kwargs={"org": "acme"}),
        {"name": "Acme Capital", "require_2fa": "on", "allow_overprivileged_keys": "on"},
    )
    assert response.status_code == 302
    assert reverse("accounts:step-up") in response["Location"]
    assert not Organization.objects.get(slug="acme").allow_overprivileged_keys


def test_a_key_accepted_as_overprivileged_stops_trading_when_the_org_turns_it_off(
    owner, trader, store_checked_key
) -> None:
    org = owner.org
    org.allow_overprivileged_keys = True
    org.save(update_fields=["allow_overprivileged_keys"])
    credential, pair = store_checked_key(
        trader, use=Use.TRADING, permissions=[*sorted(NEEDED[Use.TRADING]), "withdraw"]
    )
    assert credential.permissions["withdraw"] is True
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.TRADE)
    assert key.secret == pair.secret

    organization_update_settings(
        org=org, actor=owner, name=org.name, require_2fa=True, allow_overprivileged_keys=False
    )

    with pytest.raises(KeyUseRefused, match="withdraw funds"):
        credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.TRADE)
    # Cancelling only reduces risk, and still works.
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.CANCEL)
    assert key.secret == pair.secret


# --- Owners and admins see every member's keys ----------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "admin"])
def test_owners_and_admins_see_every_members_keys_masked(
    request, persona, trader, treasurer, store_key, client_for
) -> None:
    trading, trading_pair = store_key(trader, use=Use.TRADING, label="Trader desk")
    funding, funding_pair = store_key(treasurer, use=Use.FUNDING, label="Treasury")
    Credential.objects.filter(pk=trading.pk).update(
        permissions={"query_funds": True, "trade": True}, probe_status="done"
    )

    response = client_for(request.getfixturevalue(persona)).get(url("oversight"))

    assert response.status_code == 200
    text = response.content.decode()
    for credential, pair in ((trading, trading_pair), (funding, funding_pair)):
        assert credential.label in text
        assert credential.owner.user.email in text
        assert credential.masked_key in text
        assert pair.api_key not in text
        assert pair.secret not in text
    assert "Create &amp; modify orders" in text  # the trading key's detected permission
    assert "never" in text  # last used


@pytest.mark.parametrize("persona", ["trader", "treasurer", "approver", "viewer"])
def test_other_roles_cannot_see_the_oversight_page(request, persona, client_for) -> None:
    response = client_for(request.getfixturevalue(persona)).get(url("oversight"))
    assert response.status_code == 403


def test_the_oversight_page_costs_the_same_queries_however_many_keys(
    owner, trader, treasurer, viewer, store_key, client_for
) -> None:
    client = client_for(owner)
    store_key(trader, use=Use.TRADING)
    client.get(url("oversight"))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("oversight")).status_code == 200
        return len(captured.captured_queries)

    before = queries()
    store_key(treasurer, use=Use.FUNDING)
    store_key(viewer, use=Use.READ_ONLY)
    store_key(owner, use=Use.TRADING)
    assert queries() == before


def test_an_admin_revokes_a_traders_key_with_step_up_and_it_is_audited(
    admin, trader, store_key, stepped_up_client_for
) -> None:
    credential, _ = store_key(trader, use=Use.TRADING)

    response = stepped_up_client_for(admin).post(url("oversight-revoke", pk=credential.pk))

    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert not credential.secret_ciphertext
    reason = REVOKED_BY_OVERSEER.format(email=admin.user.email, role="admin")
    assert credential.status_reason == reason
    record = AuditRecord.objects.get(action="vault.credential.revoke")
    assert record.actor_email == admin.user.email
    assert record.target_id == str(credential.pk)
    assert record.detail["reason"] == reason


def test_revoking_another_members_key_needs_a_fresh_step_up(
    owner, trader, store_key, client_for
) -> None:
    credential, _ = store_key(trader, use=Use.TRADING)

    response = client_for(owner).post(url("oversight-revoke", pk=credential.pk))

    assert response.status_code == 302
    assert reverse("accounts:step-up") in response["Location"]
    credential.refresh_from_db()
    assert credential.is_active


def test_a_key_of_another_organization_is_a_404_on_the_oversight_page(
    owner, outsider, store_key, stepped_up_client_for
) -> None:
    theirs, _ = store_key(outsider, use=Use.TRADING)
    response = stepped_up_client_for(owner).post(url("oversight-revoke", pk=theirs.pk))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active
