"""Keys belong to Kraken accounts: the per-account rules, designation, the form and the key a
task gets (the account's tier and counter scope)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services.accounts import kraken_account_archive
from apps.orgs.services.memberships import membership_change_role
from apps.vault.models import Credential, Use
from apps.vault.selectors import (
    NoCredential,
    credential_for,
    designated_credential,
    designated_credentials,
)
from apps.vault.services import (
    ACCOUNT_HAS_KEYS,
    ACCOUNT_UNAVAILABLE,
    KeyPurpose,
    KeyUseRefused,
    credential_designate,
    credential_key_for_task,
    credential_revoke,
)
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    master_account,
    subaccount_of,
)
from tests.vault.conftest import new_key_pair
from tests.vault.test_views import form_data, url

pytestmark = pytest.mark.django_db


def test_a_member_holds_one_trading_key_per_account(trader, store_key) -> None:
    main = master_account(trader.org)
    desk = subaccount_of(main, "Desk 2")
    on_main, _ = store_key(trader, account=main)
    on_desk, _ = store_key(trader, account=desk, label="Desk key")
    with pytest.raises(ValidationError, match="for Desk 2"):
        store_key(trader, account=desk, label="Another")
    assert credential_for(membership=trader, account=main, use=Use.TRADING) == on_main
    assert credential_for(membership=trader, account=desk, use=Use.TRADING) == on_desk


def test_one_designated_key_per_account_and_use(owner, admin, store_key) -> None:
    main = master_account(owner.org)
    desk = subaccount_of(main, "Desk 2")
    main_key, _ = store_key(owner, designated=True, account=main)
    desk_key, _ = store_key(owner, designated=True, account=desk, label="Desk designated")
    # A second owner: admins store read-only keys only (apps.vault.policy), but may designate.
    co_owner = MembershipFactory(org=owner.org, role=Role.OWNER)
    with pytest.raises(ValidationError, match="already has a designated trading key"):
        store_key(co_owner, designated=True, account=main, label="Second")
    candidate, _ = store_key(co_owner, account=main, label="Co-owner personal")
    with pytest.raises(ValidationError, match="already has a designated trading key"):
        credential_designate(credential=candidate, actor=admin, designated=True)
    assert designated_credential(account=main, use=Use.TRADING) == main_key
    assert designated_credential(account=desk, use=Use.TRADING) == desk_key


def test_unattended_work_never_uses_a_members_personal_key(trader, store_key) -> None:
    main = master_account(trader.org)
    store_key(trader, account=main)
    with pytest.raises(NoCredential, match="no designated trading key"):
        designated_credential(account=main, use=Use.TRADING)


def test_a_key_cannot_go_on_another_organizations_or_an_archived_account(
    owner, trader, store_key
) -> None:
    foreign = master_account(OrganizationFactory())
    with pytest.raises(ValidationError) as raised:
        store_key(trader, account=foreign)
    assert raised.value.message_dict == {"account": [ACCOUNT_UNAVAILABLE]}
    desk = subaccount_of(master_account(trader.org), "Old desk")
    kraken_account_archive(account=desk, actor=owner)
    with pytest.raises(ValidationError):
        store_key(trader, account=desk)
    assert not Credential.objects.exists()


def test_an_account_with_active_keys_cannot_be_archived(owner, trader, store_key) -> None:
    desk = subaccount_of(master_account(trader.org), "Desk 2")
    credential, _ = store_key(trader, account=desk)
    with pytest.raises(ValidationError, match=re.escape(ACCOUNT_HAS_KEYS.format(count=1))):
        kraken_account_archive(account=desk, actor=owner)
    credential_revoke(credential=credential, actor=trader)
    kraken_account_archive(account=desk, actor=owner)
    desk.refresh_from_db()
    assert not desk.is_active


def test_a_cancel_only_key_still_keeps_its_account_from_being_archived(
    owner, trader, store_key
) -> None:
    desk = subaccount_of(master_account(trader.org), "Desk 2")
    credential, _ = store_key(trader, account=desk)
    # Demoted: the trading key may still cancel the member's open orders on the account.
    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.CANCEL_ONLY
    with pytest.raises(ValidationError, match=re.escape(ACCOUNT_HAS_KEYS.format(count=1))):
        kraken_account_archive(account=desk, actor=owner)
    # Cancelling still works through it, with the account's tier and counter scope.
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.CANCEL)
    assert key.account_ref == desk.counter_ref


def test_a_designated_key_whose_holder_is_no_longer_a_manager_is_not_used(
    owner, admin, store_key
) -> None:
    main = master_account(owner.org)
    designated, _ = store_key(admin, use=Use.READ_ONLY, designated=True, account=main)
    assert designated_credential(account=main, use=Use.READ_ONLY) == designated
    # A role change written behind the services' back (no signal): the reads still check.
    Membership.objects.filter(pk=admin.pk).update(role=Role.VIEWER)
    with pytest.raises(NoCredential):
        designated_credential(account=main, use=Use.READ_ONLY)
    assert not designated_credentials(use=Use.READ_ONLY).exists()
    with pytest.raises(KeyUseRefused, match="no longer an owner or admin"):
        credential_key_for_task(credential_id=designated.pk, purpose=KeyPurpose.READ)


def test_a_task_key_carries_the_masters_tier_and_its_accounts_counter_scope(
    trader, store_key
) -> None:
    main = master_account(trader.org, tier="pro")
    desk = subaccount_of(main, "Desk 2")
    on_main, _ = store_key(trader, account=main)
    on_desk, _ = store_key(trader, account=desk, label="Desk key")
    main_key = credential_key_for_task(credential_id=on_main.pk, purpose=KeyPurpose.READ)
    desk_key = credential_key_for_task(credential_id=on_desk.pk, purpose=KeyPurpose.READ)
    assert (main_key.tier, desk_key.tier) == ("pro", "pro")
    assert main_key.account_ref == f"acct:{main.pk}"
    assert desk_key.account_ref == f"acct:{desk.pk}"


def test_the_key_form_offers_only_the_organizations_active_accounts(
    owner, trader, stepped_up_client_for
) -> None:
    main = master_account(trader.org)
    desk = subaccount_of(main, "Desk 2")
    archived = subaccount_of(main, "Old desk")
    kraken_account_archive(account=archived, actor=owner)
    foreign = master_account(MembershipFactory(org=OrganizationFactory()).org)
    client = stepped_up_client_for(trader)
    page = client.get(url("credential-create")).content.decode()
    assert "Desk 2" in page
    assert "Old desk" not in page
    response = client.post(
        url("credential-create"), form_data(new_key_pair(), account=str(foreign.pk))
    )
    assert response.status_code == 200
    assert "Choose one of the organization" in response.content.decode()
    response = client.post(url("credential-create"), form_data(new_key_pair(), account="x'"))
    assert "Choose one of the organization" in response.content.decode()
    response = client.post(url("credential-create"), form_data(new_key_pair(), account=desk.pk))
    assert response.status_code == 302
    assert Credential.objects.get().account == desk


def test_without_any_account_the_key_form_says_what_to_do(trader, stepped_up_client_for) -> None:
    page = stepped_up_client_for(trader).get(url("credential-create")).content.decode()
    assert "has no Kraken account yet" in page
    assert reverse("orgs:account-list", kwargs={"org": "acme"}) in page


def test_the_streams_see_one_designated_key_per_active_account(owner, trader, store_key) -> None:
    main = master_account(owner.org)
    desk = subaccount_of(main, "Desk 2")
    old = subaccount_of(main, "Old desk")
    on_main, _ = store_key(owner, designated=True, account=main)
    on_desk, _ = store_key(owner, designated=True, account=desk, label="Desk designated")
    on_old, _ = store_key(owner, designated=True, account=old, label="Old designated")
    store_key(trader, account=main)  # personal: never unattended
    store_key(owner, use=Use.FUNDING, designated=True, account=main, label="Funding")
    credential_revoke(credential=on_old, actor=owner)
    kraken_account_archive(account=old, actor=owner)
    assert list(designated_credentials(use=Use.TRADING)) == [on_main, on_desk]
