"""The organization's Kraken accounts: a master with its tier, subaccounts sharing it."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.kraken.ratelimit import TIERS
from apps.orgs.models import TIER_CHOICES, KrakenAccount
from apps.orgs.services.accounts import (
    KRAKEN_ID_TAKEN,
    LABEL_TAKEN,
    MASTER_EXISTS,
    MASTER_HAS_SUBACCOUNTS,
    MASTER_MISSING,
    OWNER_SETS_ID_AND_TIER,
    kraken_account_archive,
    kraken_account_create,
    kraken_account_update,
)
from apps.orgs.validators import KRAKEN_ID_INVALID
from tests.conftest import verified_client
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

IIBAN = "AA96N74GCGEFN8KI"


def url(name: str, **kwargs: object) -> str:
    return reverse(f"orgs:{name}", kwargs={"org": "acme", **kwargs})


def add_master(owner, **kwargs) -> KrakenAccount:
    values = {"label": "Main account", "kind": "master", "tier": "intermediate", **kwargs}
    return kraken_account_create(org=owner.org, actor=owner, **values)


def test_the_tier_choices_are_the_rate_limiters_tiers() -> None:
    assert [value for value, _ in TIER_CHOICES] == list(TIERS)


def test_subaccounts_share_the_masters_tier_as_it_changes(owner, admin) -> None:
    master = add_master(owner)
    desk = kraken_account_create(org=owner.org, actor=admin, label="Desk 2", kind="subaccount")
    assert desk.parent == master
    assert desk.verification_tier == ""
    assert desk.tier == "intermediate"
    kraken_account_update(account=master, actor=owner, label=master.label, tier="pro")
    desk.refresh_from_db()
    assert desk.tier == "pro"


def test_the_kraken_id_is_normalised_and_its_shape_checked(owner) -> None:
    master = add_master(owner, kraken_id="aa96 n74g-cgef n8ki")
    assert master.kraken_id == IIBAN
    with pytest.raises(ValidationError) as raised:
        kraken_account_update(account=master, actor=owner, label="Main", kraken_id="AA96N74G")
    assert raised.value.message_dict == {"kraken_id": [KRAKEN_ID_INVALID]}


def test_an_organization_has_one_master_and_subaccounts_need_it(owner) -> None:
    with pytest.raises(ValidationError) as raised:
        kraken_account_create(org=owner.org, actor=owner, label="Desk", kind="subaccount")
    assert raised.value.message_dict == {"kind": [MASTER_MISSING]}
    add_master(owner)
    with pytest.raises(ValidationError) as raised:
        add_master(owner, label="Second")
    assert raised.value.message_dict == {"kind": [MASTER_EXISTS.format(label="Main account")]}


def test_labels_are_unique_and_a_kraken_account_is_registered_once(owner) -> None:
    add_master(owner, kraken_id=IIBAN)
    with pytest.raises(ValidationError) as raised:
        kraken_account_create(org=owner.org, actor=owner, label="Main account", kind="subaccount")
    assert raised.value.message_dict == {"label": [LABEL_TAKEN]}
    other_org = OrganizationFactory()
    other_owner = MembershipFactory(org=other_org, role="owner")
    with pytest.raises(ValidationError) as raised:
        add_master(other_owner, kraken_id=IIBAN)
    assert raised.value.message_dict == {"kraken_id": [KRAKEN_ID_TAKEN]}


def test_only_an_owner_sets_the_kraken_id_or_the_tier(owner, admin, trader) -> None:
    with pytest.raises(ValidationError) as raised:
        add_master(admin)
    assert raised.value.message_dict == {"kind": [OWNER_SETS_ID_AND_TIER]}
    master = add_master(owner)
    with pytest.raises(ValidationError) as raised:
        kraken_account_update(account=master, actor=admin, label="Main", kraken_id=IIBAN)
    assert raised.value.message_dict == {"kraken_id": [OWNER_SETS_ID_AND_TIER]}
    with pytest.raises(ValidationError):
        kraken_account_update(account=master, actor=admin, label="Main", tier="pro")
    # An admin may rename; a trader may not touch accounts at all.
    kraken_account_update(account=master, actor=admin, label="Main", kraken_id="", tier=None)
    with pytest.raises(PermissionDenied):
        kraken_account_update(account=master, actor=trader, label="Mine")


def test_every_account_change_is_audited(owner) -> None:
    master = add_master(owner)
    kraken_account_update(account=master, actor=owner, label="Main", kraken_id=IIBAN)
    desk = kraken_account_create(org=owner.org, actor=owner, label="Desk", kind="subaccount")
    kraken_account_archive(account=desk, actor=owner)
    actions = list(
        AuditRecord.objects.filter(action__startswith="kraken_account.")
        .order_by("seq")
        .values_list("action", "detail")
    )
    assert [a for a, _ in actions] == [
        "kraken_account.create",
        "kraken_account.update",
        "kraken_account.create",
        "kraken_account.archive",
    ]
    assert actions[1][1]["changes"]["kraken_id"] == ["", IIBAN]


def test_a_master_is_archived_after_its_subaccounts(owner) -> None:
    master = add_master(owner)
    desk = kraken_account_create(org=owner.org, actor=owner, label="Desk", kind="subaccount")
    with pytest.raises(ValidationError, match=MASTER_HAS_SUBACCOUNTS):
        kraken_account_archive(account=master, actor=owner)
    kraken_account_archive(account=desk, actor=owner)
    kraken_account_archive(account=master, actor=owner)
    # An archived master frees the place for a new one.
    assert add_master(owner, label="New main").is_master


# --- Pages -----------------------------------------------------------------------------------


def test_the_accounts_page_lists_the_master_and_its_subaccounts(owner, admin) -> None:
    add_master(owner, kraken_id=IIBAN)
    kraken_account_create(org=owner.org, actor=owner, label="Desk 2", kind="subaccount")
    page = verified_client(admin.user).get(url("account-list")).content.decode()
    assert "Main account" in page
    assert IIBAN in page
    assert "Desk 2" in page
    assert "Intermediate" in page


def test_an_owner_setting_the_id_or_tier_is_asked_for_a_step_up(owner, client_for) -> None:
    data = {"label": "Main account", "kind": "master", "tier": "pro", "kraken_id": IIBAN}
    response = verified_client(owner.user).post(url("account-create"), data)
    assert response["Location"].startswith(reverse("accounts:step-up"))
    assert not KrakenAccount.objects.exists()
    response = client_for(owner).post(url("account-create"), data)
    assert response.status_code == 302
    master = KrakenAccount.objects.get()
    assert (master.kraken_id, master.tier) == (IIBAN, "pro")
    # Renaming alone needs no step-up.
    response = verified_client(owner.user).post(
        url("account-edit", pk=master.pk), {"label": "Main", "kraken_id": IIBAN, "tier": "pro"}
    )
    assert response.status_code == 302
    response = verified_client(owner.user).post(
        url("account-edit", pk=master.pk), {"label": "Main", "kraken_id": IIBAN, "tier": "starter"}
    )
    assert response["Location"].startswith(reverse("accounts:step-up"))


def test_an_admin_adds_subaccounts_but_is_not_offered_the_id_or_tier(owner, admin) -> None:
    add_master(owner)
    client = verified_client(admin.user)
    page = client.get(url("account-create")).content.decode()
    assert 'name="kraken_id"' not in page
    assert 'name="tier"' not in page
    # Posting them anyway changes nothing: the fields are not on an admin's form.
    response = client.post(
        url("account-create"),
        {"label": "Desk 2", "kind": "subaccount", "kraken_id": IIBAN, "tier": "pro"},
    )
    assert response.status_code == 302
    desk = KrakenAccount.objects.get(label="Desk 2")
    assert (desk.kraken_id, desk.verification_tier) == ("", "")
    response = client.post(url("account-create"), {"label": "Other main", "kind": "master"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {"label": "", "kind": "master", "tier": "pro"},
        {"label": "x" * 500, "kind": "master", "tier": "pro"},
        {"label": "Main", "kind": "master", "tier": "platinum"},
        {"label": "Main", "kind": "master", "tier": ""},
        {"label": "Main", "kind": "master", "tier": "pro", "kraken_id": "not an id!"},
        {"label": "Main", "kind": "subaccount"},
        {"label": "Main", "kind": "gibberish\x00"},
        {},
    ],
)
def test_bad_input_gets_field_errors_never_a_500(owner, client_for, data) -> None:
    response = client_for(owner).post(url("account-create"), data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not KrakenAccount.objects.exists()


def test_another_organizations_account_is_a_404(owner, client_for) -> None:
    other_owner = MembershipFactory(
        org=OrganizationFactory(), role="owner", user=UserFactory(email="o@other.test")
    )
    theirs = add_master(other_owner)
    client = client_for(owner)
    assert client.get(url("account-edit", pk=theirs.pk)).status_code == 404
    assert client.post(url("account-archive", pk=theirs.pk)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active
