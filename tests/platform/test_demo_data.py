"""The demo: a master and a subaccount on the sandbox and in the portal, members' keys on them
and designated keys for each account; idempotent, and it retires the keys of the older demo."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from apps.kraken.client import kraken_private
from apps.orgs.models import KrakenAccount, Organization
from apps.vault.models import Credential, Use
from apps.vault.selectors import designated_credential
from apps.vault.services import credential_key_for_task
from kraken_portal.management.commands.demo_data import (
    DEMO_KEYS,
    DEMO_MASTER_ID,
    DEMO_ORG_SLUG,
    DEMO_SUBACCOUNT_LABEL,
)
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_env(sandbox: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_TIER = "intermediate"
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    monkeypatch.setenv("SANDBOX_ADMIN_TOKEN", sandbox.admin_token)
    return sandbox


def test_the_demo_has_a_master_and_a_subaccount_with_members_and_designated_keys(
    demo_env: Any,
) -> None:
    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)
    org = Organization.objects.get(slug=DEMO_ORG_SLUG)
    # An installation upgraded from the keys-without-accounts demo: its old key is retired.
    old = Credential.objects.filter(org=org).first()
    assert old is not None
    Credential.objects.filter(pk=old.pk).update(label="Demo sandbox trading key")
    old.refresh_from_db()
    old_key = old.api_key
    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)

    master = KrakenAccount.objects.get(org=org, kind="master")
    sub = KrakenAccount.objects.get(org=org, kind="subaccount")
    assert (master.kraken_id, master.tier) == (DEMO_MASTER_ID, "intermediate")
    assert (sub.label, sub.parent, sub.tier) == (DEMO_SUBACCOUNT_LABEL, master, "intermediate")
    assert demo_env.account(DEMO_MASTER_ID)["subaccounts"]

    active = Credential.objects.filter(org=org, status="active")
    assert active.count() == len(DEMO_KEYS)
    assert active.filter(designated=True).count() == 4
    assert not active.filter(api_key=old_key, label="Demo sandbox trading key").exists()

    # Each account's designated keys act on that account at the sandbox.
    for account, usd in ((master, "1250000"), (sub, "250000")):
        credential = designated_credential(account=account, use=Use.TRADING)
        key = credential_key_for_task(credential_id=credential.pk, purpose="test")
        assert key.account_ref == account.counter_ref
        balance = kraken_private(key, "Balance")
        assert Decimal(balance["ZUSD"]) == Decimal(usd)
