"""The key permission check (apps.exchange.key_check: GetApiKeyInfo, probing as fallback) against
the Kraken sandbox, with keys of different permissions; the vault records what it finds."""

from __future__ import annotations

import base64
import logging
import os

import pytest

from apps.audit.models import AuditRecord
from apps.exchange.tasks import credential_check_task
from apps.vault.models import Credential, Use
from apps.vault.policy import ACCEPTED_REASON, REFUSED_REASON, assess
from apps.vault.services import credential_create
from tests.factories import master_account
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.django_db

PROBED = [
    "query_funds",
    "query_open",
    "query_closed",
    "query_ledger",
    "trade",
    "deposit",
    "withdraw",
    "earn",
    "websocket",
]
READ_ONLY = ["query_funds", "query_open", "query_closed", "query_ledger"]


@pytest.fixture(autouse=True)
def kraken_is_the_sandbox(settings, sandbox) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"


@pytest.fixture
def account(sandbox) -> str:
    return str(sandbox.create_account({"USD": "10000", "XBT": "1"}))


def stored(membership, sandbox, account, permissions, *, use=Use.TRADING, otp=None):
    key, secret = sandbox.create_key(account, permissions=permissions, otp=otp)
    credential = credential_create(
        membership=membership,
        label="Probe me",
        api_key=key,
        secret=secret,
        otp=otp,
        account=master_account(membership.org),
        use=use,
    )
    return credential, secret


def probe(credential: Credential) -> Credential:
    credential_check_task(credential.pk)  # The task body, run here in the test's transaction.
    credential.refresh_from_db()
    return credential


def test_a_full_permission_trading_key_is_detected_and_refused_with_its_reason(
    trader, sandbox, account
) -> None:
    credential, _ = stored(trader, sandbox, account, [*PROBED, "cancel", "export"])
    credential = probe(credential)
    assert credential.probe_status == "done"
    assert credential.permissions == dict.fromkeys(PROBED, True)
    assert credential.last_error == ""
    assert credential.last_used_at is not None
    assessment = assess(use=credential.use, permissions=credential.permissions)
    assert assessment.excess == ("deposit", "withdraw", "earn")
    # Withdraw and Earn can move funds a trading key never needs: refused, secret destroyed.
    assert credential.status == Credential.Status.REFUSED
    assert not credential.secret_ciphertext
    assert credential.status_reason == REFUSED_REASON.format(
        use="trading use", names="withdraw funds, earn (allocate & deallocate)"
    )
    refusal = AuditRecord.objects.get(action="vault.credential.refuse")
    assert refusal.detail["reason"] == credential.status_reason
    probed = AuditRecord.objects.get(action="vault.credential.probe")
    assert probed.detail["overprivileged"] == "refused"
    # The AddOrder probe was validate-only: nothing was placed.
    assert sandbox.account(account)["open_orders"] == []


def test_an_organization_that_allows_overprivileged_keys_keeps_one_with_the_reason(
    trader, sandbox, account
) -> None:
    trader.org.allow_overprivileged_keys = True
    trader.org.save(update_fields=["allow_overprivileged_keys"])
    credential, _ = stored(trader, sandbox, account, [*PROBED, "cancel"])
    credential = probe(credential)
    assert credential.status == Credential.Status.ACTIVE
    assert credential.status_reason == ACCEPTED_REASON.format(
        use="trading use", names="withdraw funds, earn (allocate & deallocate)"
    )
    probed = AuditRecord.objects.get(action="vault.credential.probe")
    assert probed.detail["overprivileged"] == "allowed by the organization"
    assert probed.detail["reason"] == credential.status_reason
    assert not AuditRecord.objects.filter(action="vault.credential.refuse").exists()


def test_a_read_only_key_that_can_trade_is_refused(viewer, sandbox, account) -> None:
    credential, _ = stored(viewer, sandbox, account, [*READ_ONLY, "trade"], use=Use.READ_ONLY)
    credential = probe(credential)
    assert credential.status == Credential.Status.REFUSED
    assert "create & modify orders" in credential.status_reason


def test_a_trading_key_needs_closed_order_queries_and_websocket_for_reconciliation(
    trader, sandbox, account
) -> None:
    credential, _ = stored(trader, sandbox, account, ["query_funds", "query_open", "trade"])
    credential = probe(credential)
    assessment = assess(use=credential.use, permissions=credential.permissions)
    assert assessment.missing == ("query_closed", "websocket")
    assert credential.status == Credential.Status.ACTIVE


def test_a_read_only_key_shows_exactly_its_query_permissions(trader, sandbox, account) -> None:
    credential, _ = stored(trader, sandbox, account, READ_ONLY, use=Use.READ_ONLY)
    credential = probe(credential)
    assert credential.permissions == {name: name in READ_ONLY for name in PROBED}
    assert assess(use=credential.use, permissions=credential.permissions).warnings == ()


def test_without_get_api_key_info_the_key_is_probed_call_by_call_and_earn_stays_unknown(
    trader, sandbox, account
) -> None:
    # An exchange that cannot answer GetApiKeyInfo: the probe falls back to one call per switch.
    # Earn has no read that needs it alone, so the fallback says "unknown", never "granted".
    sandbox.set_faults([{"kind": "unavailable", "endpoint": "GetApiKeyInfo", "probability": 1}])
    try:
        credential, _ = stored(trader, sandbox, account, [*READ_ONLY, "earn"], use=Use.READ_ONLY)
        credential = probe(credential)
    finally:
        sandbox.clear_faults()
    expected: dict[str, bool | None] = {name: name in READ_ONLY for name in PROBED}
    expected["earn"] = None
    assert credential.probe_status == "done"
    assert credential.permissions == expected
    assert sandbox.account(account)["open_orders"] == []


def test_a_key_without_query_funds_leaves_deposit_and_withdraw_unknown_in_the_fallback(
    trader, sandbox, account
) -> None:
    # DepositMethods and WithdrawAddresses need Query Funds too, so their refusal proves nothing.
    sandbox.set_faults([{"kind": "unavailable", "endpoint": "GetApiKeyInfo", "probability": 1}])
    try:
        credential, _ = stored(trader, sandbox, account, ["deposit", "trade"])
        credential = probe(credential)
    finally:
        sandbox.clear_faults()
    assert credential.permissions["query_funds"] is False
    assert credential.permissions["trade"] is True
    assert credential.permissions["deposit"] is None
    assert credential.permissions["withdraw"] is None


def test_a_trading_key_without_trade_permission_is_reported_as_missing_it(
    trader, sandbox, account
) -> None:
    credential, _ = stored(trader, sandbox, account, ["query_funds", "query_open", "cancel"])
    credential = probe(credential)
    assert credential.permissions["trade"] is False
    assessment = assess(use=credential.use, permissions=credential.permissions)
    assert "trade" in assessment.missing
    assert any("lacks what trading use needs" in w for w in assessment.warnings)


def test_a_funding_key_with_a_2fa_password_is_probed_with_it(treasurer, sandbox, account) -> None:
    credential, _ = stored(
        treasurer,
        sandbox,
        account,
        ["query_funds", "query_ledger", "deposit", "withdraw"],
        use=Use.FUNDING,
        otp="key-2fa-pw",
    )
    credential = probe(credential)
    assert credential.probe_status == "done"
    granted = {name for name, ok in credential.permissions.items() if ok}
    assert granted == {"query_funds", "query_ledger", "deposit", "withdraw"}


def test_a_key_kraken_does_not_know_fails_the_probe_with_a_short_error(
    trader, sandbox, account
) -> None:
    credential = credential_create(
        membership=trader,
        label="Typo",
        api_key=base64.b64encode(os.urandom(42)).decode(),
        secret=base64.b64encode(os.urandom(64)).decode(),
        otp=None,
        account=master_account(trader.org),
        use=Use.TRADING,
    )
    credential = probe(credential)
    assert credential.probe_status == "failed"
    assert credential.last_error.startswith("Kraken GetApiKeyInfo: EAPI:Invalid key")
    assert credential.permissions == {}
    record = AuditRecord.objects.get(action="vault.credential.probe")
    assert record.detail["outcome"] == "failed"


def test_the_probe_result_is_audited_without_the_secret_or_logs_of_it(
    trader, sandbox, account, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    credential, secret = stored(trader, sandbox, account, ["query_funds", "trade"])
    probe(credential)
    record = AuditRecord.objects.get(action="vault.credential.probe", target_id=str(credential.pk))
    assert record.actor_id is None
    assert sorted(record.detail["granted"]) == ["query_funds", "trade"]
    assert "query_open" in record.detail["denied"]
    assert secret not in str(record.detail)
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_redelivered_probe_message_does_nothing(trader, sandbox, account) -> None:
    credential, _ = stored(trader, sandbox, account, READ_ONLY)
    probe(credential)
    assert credential_check_task(credential.pk) is None
    assert AuditRecord.objects.filter(action="vault.credential.probe").count() == 1


def test_a_revoked_key_is_not_probed(trader, sandbox, account) -> None:
    from apps.vault.services import credential_revoke

    credential, _ = stored(trader, sandbox, account, READ_ONLY)
    credential_revoke(credential=credential, actor=trader)
    assert credential_check_task(credential.pk) is None
