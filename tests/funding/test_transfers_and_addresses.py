"""Transfers between the master and a subaccount, and the address book, against the real
sandbox (tasks eager on commit)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_decide
from apps.audit.models import AuditRecord
from apps.exchange.models import Kind, Operation, State
from apps.funding.models import Destination, Transfer, Withdrawal
from apps.funding.services import (
    destination_remove,
    destination_request,
    transfer_request,
    withdrawal_request,
)
from apps.funding.services.transfers import transfer_complete_from_ledger
from apps.funding.signals import destination_removed
from apps.orgs.models import Membership
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def approve(approval_id: int, approver: Membership) -> ApprovalRequest:
    approval = ApprovalRequest.objects.get(pk=approval_id)
    return approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )


def test_a_transfer_to_a_subaccount_is_sent_once_with_the_masters_key_and_account_ids(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    transfer = transfer_request(
        requester=treasurer,
        from_account=treasury.master,
        to_account=treasury.sub,
        asset="BTC",
        amount="0.1",
    )
    assert transfer.status == Transfer.Status.AWAITING_APPROVAL
    approve(transfer.approval_id or 0, approver)

    transfer.refresh_from_db()
    operation = Operation.objects.get(kind=Kind.ACCOUNT_TRANSFER)
    assert operation.state == State.DONE
    assert operation.credential_id == treasury.desk.funding.pk
    assert operation.params["from"] == treasury.master.kraken_id
    assert operation.params["to"] == treasury.sub.kraken_id
    assert transfer.status == Transfer.Status.COMPLETE
    assert transfer.transfer_id == operation.result["transfer_id"]
    ledger = treasury.desk.look(exchange_sandbox, "Ledgers", {"type": "transfer"})["ledger"]
    assert [e["refid"] for e in ledger.values()] == [transfer.transfer_id]


def test_a_pending_transfer_completes_when_its_ledger_entry_shows(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    transfer = transfer_request(
        requester=treasurer,
        from_account=treasury.master,
        to_account=treasury.sub,
        asset="USD",
        amount="100",
    )
    Transfer.objects.filter(pk=transfer.pk).update(
        status=Transfer.Status.PENDING, transfer_id="TPENDING-1"
    )
    assert transfer_complete_from_ledger(account_id=treasury.sub.pk, refid="TPENDING-1")
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.COMPLETE
    assert not transfer_complete_from_ledger(account_id=treasury.sub.pk, refid="TPENDING-1")


def test_transfers_only_go_between_the_master_and_its_subaccounts(
    treasury: Treasury, treasurer: Membership
) -> None:
    with pytest.raises(ValidationError) as caught:
        transfer_request(
            requester=treasurer,
            from_account=treasury.master,
            to_account=treasury.master,
            asset="BTC",
            amount="1",
        )
    assert "to_account" in caught.value.message_dict
    assert not Transfer.objects.exists()


def test_an_address_is_allow_listed_only_once_approved_with_krakens_address_frozen(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    exchange_sandbox.add_withdraw_address(
        treasury.desk.account_id, "XBT", "treasury-2", "bc1qsecondaddress"
    )
    destination = destination_request(
        requester=treasurer, account=treasury.master, asset="BTC", key="treasury-2"
    )
    assert destination.status == Destination.Status.PENDING
    assert destination.address == "bc1qsecondaddress"
    with pytest.raises(ValidationError) as caught:
        withdrawal_request(
            requester=treasurer,
            account=treasury.master,
            destination=destination,
            asset="BTC",
            amount="0.01",
        )
    assert "destination" in caught.value.message_dict

    approve(destination.approval_id or 0, approver)
    destination.refresh_from_db()
    assert destination.status == Destination.Status.ALLOWED


def test_an_address_re_pointed_on_kraken_before_approval_is_not_allow_listed(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    exchange_sandbox.add_withdraw_address(treasury.desk.account_id, "XBT", "hot-3", "bc1qfirst")
    destination = destination_request(
        requester=treasurer, account=treasury.master, asset="BTC", key="hot-3"
    )
    exchange_sandbox.add_withdraw_address(treasury.desk.account_id, "XBT", "hot-3", "bc1qother")
    approval = approve(destination.approval_id or 0, approver)

    approval.refresh_from_db()
    destination.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.FAILED
    assert "now points to bc1qother" in approval.error
    assert destination.status == Destination.Status.PENDING


def test_a_key_that_kraken_does_not_have_cannot_be_requested(
    treasury: Treasury, treasurer: Membership
) -> None:
    with pytest.raises(ValidationError) as caught:
        destination_request(
            requester=treasurer, account=treasury.master, asset="BTC", key="no-such-key"
        )
    assert "no withdrawal address named" in caught.value.message_dict["key"][0]
    assert not Destination.objects.filter(key="no-such-key").exists()


def test_removing_an_address_is_immediate_audited_voids_waiting_withdrawals_and_signals(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    waiting = withdrawal_request(
        requester=treasurer,
        account=treasury.master,
        destination=treasury.destination,
        asset="BTC",
        amount="0.01",
    )
    heard: list[Destination] = []

    def receiver(sender: Any, destination: Destination, **kwargs: Any) -> None:
        heard.append(destination)

    destination_removed.connect(receiver)
    try:
        destination_remove(destination=treasury.destination, actor=approver)
    finally:
        destination_removed.disconnect(receiver)

    waiting.refresh_from_db()
    assert waiting.status == Withdrawal.Status.VOIDED
    assert "was removed from the address book" in waiting.error
    assert ApprovalRequest.objects.get(pk=waiting.approval_id or 0).status == "cancelled"
    assert [d.pk for d in heard] == [treasury.destination.pk]
    record = AuditRecord.objects.get(action="funding.destination.remove")
    assert record.detail["voided"] == [waiting.pk]
    treasury.destination.refresh_from_db()
    assert treasury.destination.status == Destination.Status.REMOVED
    with pytest.raises(ValidationError):
        withdrawal_request(
            requester=treasurer,
            account=treasury.master,
            destination=treasury.destination,
            asset="BTC",
            amount="0.01",
        )
    assert not Operation.objects.exists()


def test_an_unattended_withdrawal_under_a_prior_approval_is_sent_with_the_designated_key(
    treasury: Treasury, treasurer: Membership, approver: Membership, owner: Membership
) -> None:
    # A workflow approved once (here: an executed approval of this organization).
    blanket = ApprovalRequest.objects.create(
        org=owner.org,
        kind="funding.withdrawal",
        requester=owner.user,
        fingerprint="-",
        required_approvals=1,
        status=ApprovalRequest.Status.EXECUTED,
        expires_at="2099-01-01T00:00:00Z",
    )
    withdrawal = withdrawal_request(
        requester=treasurer,
        account=treasury.master,
        destination=treasury.destination,
        asset="BTC",
        amount=Decimal("0.002"),
        unattended=True,
        preapproved=blanket,
        source="workflow:7",
    )
    withdrawal.refresh_from_db()
    operation = Operation.objects.get(kind=Kind.WITHDRAW)
    assert operation.credential_id == treasury.desk.funding.pk  # the designated key
    assert operation.requested_by_id is None
    assert operation.state == State.DONE
    assert withdrawal.status == Withdrawal.Status.PROCESSING
    assert withdrawal.source == "workflow:7"


def test_a_transfer_above_the_spendable_balance_is_refused_next_to_the_amount(
    treasury: Treasury, treasurer: Membership
) -> None:
    from apps.exchange.services import balances_refresh

    balances_refresh(account=treasury.master)  # 5 BTC recorded
    with pytest.raises(ValidationError) as caught:
        transfer_request(
            requester=treasurer,
            from_account=treasury.master,
            to_account=treasury.sub,
            asset="BTC",
            amount="6",
        )
    assert "Above what Main account has available: 5" in caught.value.message_dict["amount"][0]
    assert not Transfer.objects.exists()
    assert not ApprovalRequest.objects.exists()


def test_two_requests_with_one_source_make_one_withdrawal_and_one_operation(
    treasury: Treasury, treasurer: Membership, owner: Membership
) -> None:
    from django.db import IntegrityError, transaction

    blanket = ApprovalRequest.objects.create(
        org=owner.org,
        kind="funding.withdrawal",
        requester=owner.user,
        fingerprint="-",
        required_approvals=1,
        status=ApprovalRequest.Status.EXECUTED,
        expires_at="2099-01-01T00:00:00Z",
    )
    ask: dict[str, Any] = {
        "requester": treasurer,
        "account": treasury.master,
        "destination": treasury.destination,
        "asset": "BTC",
        "amount": Decimal("0.002"),
        "unattended": True,
        "preapproved": blanket,
        "source": "schedules.run:41",
    }
    first = withdrawal_request(**ask)
    second = withdrawal_request(**ask)
    assert first.pk == second.pk
    assert Withdrawal.objects.count() == 1
    assert Operation.objects.filter(kind=Kind.WITHDRAW).count() == 1
    # And the database holds it whatever the code path: a second row with the source fails.
    with pytest.raises(IntegrityError), transaction.atomic():
        Withdrawal.objects.create(
            **{
                f.attname: getattr(first, f.attname)
                for f in Withdrawal._meta.concrete_fields
                if not f.primary_key
            }
        )


def test_two_transfers_with_one_source_make_one_transfer_and_one_operation(
    treasury: Treasury, treasurer: Membership, owner: Membership
) -> None:
    blanket = ApprovalRequest.objects.create(
        org=owner.org,
        kind="funding.transfer",
        requester=owner.user,
        fingerprint="-",
        required_approvals=1,
        status=ApprovalRequest.Status.EXECUTED,
        expires_at="2099-01-01T00:00:00Z",
    )
    ask: dict[str, Any] = {
        "requester": treasurer,
        "from_account": treasury.master,
        "to_account": treasury.sub,
        "asset": "BTC",
        "amount": "0.1",
        "unattended": True,
        "preapproved": blanket,
        "source": "schedules.run:42",
    }
    first = transfer_request(**ask)
    second = transfer_request(**ask)
    assert first.pk == second.pk
    assert Transfer.objects.count() == 1
    assert Operation.objects.filter(kind=Kind.ACCOUNT_TRANSFER).count() == 1


def test_withdrawals_sent_under_a_workflow_approval_are_checked_and_counted_in_daily_caps(
    treasury: Treasury, treasurer: Membership, owner: Membership
) -> None:
    from apps.approvals.models import Policy
    from apps.funding.services.withdrawals import withdrawal_policy
    from apps.schedules.approval_kind import KIND as WORKFLOW_KIND

    org = owner.org
    policy = withdrawal_policy(org)
    Policy.objects.filter(pk=policy.pk).update(velocity_caps={"BTC": "0.005"})
    workflow_approval = ApprovalRequest.objects.create(
        org=org,
        kind=WORKFLOW_KIND,
        requester=owner.user,
        fingerprint="-",
        required_approvals=1,
        status=ApprovalRequest.Status.APPROVED,
        expires_at="2099-01-01T00:00:00Z",
    )

    def run(source: str, amount: str, *, preapproved: ApprovalRequest | None) -> Withdrawal:
        return withdrawal_request(
            requester=treasurer,
            account=treasury.master,
            destination=treasury.destination,
            asset="BTC",
            amount=Decimal(amount),
            unattended=preapproved is not None,
            preapproved=preapproved,
            source=source,
        )

    run("schedules.run:1", "0.003", preapproved=workflow_approval)
    # A second run would take the day to 0.006 BTC: refused, nothing sent.
    with pytest.raises(ValidationError) as caught:
        run("schedules.run:2", "0.003", preapproved=workflow_approval)
    assert "daily cap for BTC: 0.006 BTC" in caught.value.message_dict["amount"][0]
    # And a treasurer's own request counts what the workflow sent.
    with pytest.raises(ValidationError) as caught:
        run("", "0.003", preapproved=None)
    assert "daily cap for BTC" in caught.value.message_dict["amount"][0]
    assert Withdrawal.objects.count() == 1
    assert Operation.objects.filter(kind=Kind.WITHDRAW).count() == 1
    assert not ApprovalRequest.objects.filter(kind="funding.withdrawal").exists()
    # Within the cap, it is sent.
    run("schedules.run:3", "0.002", preapproved=workflow_approval)
    assert Operation.objects.filter(kind=Kind.WITHDRAW).count() == 2


def test_transfers_sent_under_a_workflow_approval_respect_the_transfer_caps(
    treasury: Treasury, treasurer: Membership, owner: Membership
) -> None:
    from apps.approvals.models import Policy
    from apps.approvals.policies import policy_for
    from apps.schedules.approval_kind import KIND as WORKFLOW_KIND

    org = owner.org
    policy = policy_for(org=org, kind="funding.transfer")
    Policy.objects.filter(pk=policy.pk).update(velocity_caps={"BTC": "0.5"})
    workflow_approval = ApprovalRequest.objects.create(
        org=org,
        kind=WORKFLOW_KIND,
        requester=owner.user,
        fingerprint="-",
        required_approvals=1,
        status=ApprovalRequest.Status.APPROVED,
        expires_at="2099-01-01T00:00:00Z",
    )
    ask: dict[str, Any] = {
        "requester": treasurer,
        "from_account": treasury.master,
        "to_account": treasury.sub,
        "asset": "BTC",
        "amount": "0.3",
        "unattended": True,
        "preapproved": workflow_approval,
    }
    transfer_request(**ask, source="schedules.run:1")
    with pytest.raises(ValidationError) as caught:
        transfer_request(**ask, source="schedules.run:2")
    assert "daily cap for BTC: 0.6 BTC" in caught.value.message_dict["amount"][0]
    assert Transfer.objects.count() == 1
    assert Operation.objects.filter(kind=Kind.ACCOUNT_TRANSFER).count() == 1
