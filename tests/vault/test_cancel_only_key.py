"""A key opened to cancel can only cancel (and read the orders it cancels): the Kraken client
refuses anything else before a nonce, rate budget or request is spent, whatever the caller
says it is doing. Checked against the Kraken sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.kraken import nonce
from apps.kraken.client import MethodNotAllowedForKeyError, OperationRef, kraken_private
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import membership_change_role
from apps.vault.models import Credential, Use
from apps.vault.services import (
    KEY_NOT_THEIRS_TO_CANCEL,
    KeyPurpose,
    KeyUseRefused,
    credential_key_for_task,
)
from tests.kraken.conftest import sandbox_limits
from tests.vault.conftest import KeyPair

pytestmark = pytest.mark.django_db

ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": Decimal("0.01"),
    "price": Decimal("1000"),
}


def _untouched(api_key: str, sandbox: Any) -> bool:
    """No nonce or rate budget of ours was used, and the sandbox counted no call."""
    used = nonce.redis_client().keys(f"kraken:*{nonce.key_ref(api_key)}*")
    return not used and Decimal(sandbox_limits(sandbox, api_key)["api_counter"]) == 0


@pytest.fixture
def cancel_only(owner: Membership, trader: Membership, store_key: Any, sandbox: Any, settings: Any):
    """A demoted trader's cancel-only key, and an open order of theirs (placed earlier with
    another key of the same account)."""
    settings.KRAKEN_API_URL = sandbox.url
    account = sandbox.create_account({"USD": "100000", "XBT": "1"})
    placer, placer_secret = sandbox.create_key(account)
    placed = sandbox.private(placer, placer_secret, "AddOrder", {**ORDER, "volume": "0.01"})
    assert placed["error"] == [], placed
    txid = placed["result"]["txid"][0]
    api_key, secret = sandbox.create_key(
        account, permissions=["query_funds", "query_open", "query_closed", "trade"]
    )
    credential, _ = store_key(trader, use=Use.TRADING, pair=KeyPair(api_key=api_key, secret=secret))
    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.CANCEL_ONLY
    return credential, account, txid


def test_a_cancel_only_key_opened_to_cancel_cannot_place_an_order(cancel_only, sandbox) -> None:
    credential, account, _ = cancel_only
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.CANCEL)

    # Even declared as an exchange operation, an order is refused here, before anything.
    with pytest.raises(MethodNotAllowedForKeyError, match="It was not sent"):
        kraken_private(key, "AddOrder", ORDER, operation=OperationRef("op-1"))
    # Nor can it get a WebSocket token, through which orders could be placed.
    with pytest.raises(MethodNotAllowedForKeyError):
        kraken_private(key, "GetWebSocketsToken")
    assert _untouched(credential.api_key, sandbox)
    assert len(sandbox.account(account)["open_orders"]) == 1


def test_a_cancel_only_key_opened_to_cancel_reads_and_cancels(cancel_only, sandbox) -> None:
    credential, account, txid = cancel_only
    for purpose in (KeyPurpose.CANCEL, KeyPurpose.KILL_SWITCH):
        key = credential_key_for_task(credential_id=credential.pk, purpose=purpose)
        assert txid in kraken_private(key, "OpenOrders")["open"]

    result = kraken_private(key, "CancelOrder", {"txid": txid}, operation=OperationRef("op-2"))

    assert result["count"] == 1
    assert sandbox.account(account)["open_orders"] == []


def test_a_task_acting_for_another_member_cannot_open_a_members_key_to_cancel(
    cancel_only, admin
) -> None:
    credential, _, _ = cancel_only
    with pytest.raises(KeyUseRefused) as refused:
        credential_key_for_task(
            credential_id=credential.pk, purpose=KeyPurpose.CANCEL, for_member_id=admin.pk
        )
    assert str(refused.value) == KEY_NOT_THEIRS_TO_CANCEL
    # Acting for the key's owner, or as the organization's kill switch, it opens.
    credential_key_for_task(
        credential_id=credential.pk, purpose=KeyPurpose.CANCEL, for_member_id=credential.owner_id
    )
    credential_key_for_task(
        credential_id=credential.pk, purpose=KeyPurpose.KILL_SWITCH, for_member_id=admin.pk
    )
