"""Withdrawals against the real sandbox, in this process (tasks run eagerly on commit):
requested with Kraken's preview, frozen, approved four-eyes, sent once with key, address and
max_fee, followed to Success; refusals shown; cancel while Kraken allows it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_decide
from apps.exchange.models import Kind, Operation, State
from apps.funding import kraken_funding
from apps.funding.models import Destination, Withdrawal
from apps.funding.services import (
    withdrawal_cancel,
    withdrawal_request,
    withdrawals_follow,
)
from apps.orgs.models import Membership
from tests.exchange.conftest import WITHDRAW_KEY
from tests.funding.conftest import BTC_FEE, Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def request(treasury: Treasury, treasurer: Membership, amount: str = "0.01") -> Withdrawal:
    return withdrawal_request(
        requester=treasurer,
        account=treasury.master,
        destination=treasury.destination,
        asset="BTC",
        amount=amount,
        memo="rebalance",
    )


def approve(withdrawal: Withdrawal, approver: Membership) -> ApprovalRequest:
    assert withdrawal.approval is not None
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    return approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )


def kraken_withdrawals(treasury: Treasury, sandbox: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = treasury.desk.look(sandbox, "WithdrawStatus", {"asset": "XBT"})
    return result


def test_a_request_freezes_the_preview_and_waits_for_approval(
    treasury: Treasury, treasurer: Membership, exchange_sandbox: Any
) -> None:
    withdrawal = request(treasury, treasurer)

    assert withdrawal.status == Withdrawal.Status.AWAITING_APPROVAL
    assert withdrawal.fee_preview == BTC_FEE
    assert withdrawal.amount_received_preview == Decimal("0.01") - BTC_FEE
    # The preview plus the default 20 % margin.
    assert withdrawal.max_fee == Decimal("0.00018")
    assert (withdrawal.key, withdrawal.address) == (WITHDRAW_KEY, "bc1qportaltestaddress")
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    assert approval.kind == "funding.withdrawal"
    assert approval.summary["max_fee"] == "0.00018"
    assert approval.summary["address"] == "bc1qportaltestaddress"
    assert approval.summary["rate"].startswith("50000")
    assert approval.value == Decimal("500")
    assert approval.required_approvals == 1
    assert not Operation.objects.exists()
    assert kraken_withdrawals(treasury, exchange_sandbox) == []


def test_an_approved_withdrawal_is_sent_once_with_key_address_and_max_fee_and_followed_to_success(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    withdrawal = request(treasury, treasurer)
    approve(withdrawal, approver)

    withdrawal.refresh_from_db()
    operation = Operation.objects.get(kind=Kind.WITHDRAW)
    assert operation.state == State.DONE
    assert operation.params["key"] == WITHDRAW_KEY
    assert operation.params["address"] == "bc1qportaltestaddress"
    assert operation.params["max_fee"] == "0.00018"
    assert withdrawal.status == Withdrawal.Status.PROCESSING
    assert withdrawal.refid == operation.result["refid"]
    on_kraken = kraken_withdrawals(treasury, exchange_sandbox)
    assert [w["refid"] for w in on_kraken] == [withdrawal.refid]

    exchange_sandbox.advance(60)  # Initial → Pending → Settled → Success
    withdrawals_follow()
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.SUCCESS
    assert withdrawal.kraken_status == "Success"
    assert withdrawal.txid
    assert withdrawal.fee == BTC_FEE
    assert ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).status == "executed"


def test_a_fee_above_the_approved_maximum_is_refused_by_kraken_and_shown(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    withdrawal = request(treasury, treasurer)
    # Kraken's fee rises after the request; the approved maximum stays 0.00018.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(max_fee=Decimal("0.0001"))
    Destination.objects.filter(pk=treasury.destination.pk)  # unchanged
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    # The frozen maximum is part of what was approved: re-fingerprint as if requested so.
    from apps.funding.services.withdrawals import withdrawal_fingerprint

    ApprovalRequest.objects.filter(pk=approval.pk).update(
        fingerprint=withdrawal_fingerprint(approval)
    )
    approve(withdrawal, approver)

    withdrawal.refresh_from_db()
    operation = Operation.objects.get(kind=Kind.WITHDRAW)
    assert operation.state == State.REJECTED
    assert operation.error_code == "EFunding:Max fee exceeded"
    assert withdrawal.status == Withdrawal.Status.REFUSED
    assert withdrawal.error == kraken_funding.REFUSALS["EFunding:Max fee exceeded"]
    assert kraken_withdrawals(treasury, exchange_sandbox) == []


def test_a_destination_key_re_pointed_on_kraken_after_approval_is_refused(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    withdrawal = request(treasury, treasurer)
    # On Kraken, the key now points elsewhere (its website, after the portal froze it).
    exchange_sandbox.add_withdraw_address(
        treasury.desk.account_id, "XBT", WITHDRAW_KEY, "bc1qattackeraddress"
    )
    approve(withdrawal, approver)

    withdrawal.refresh_from_db()
    operation = Operation.objects.get(kind=Kind.WITHDRAW)
    assert operation.state == State.REJECTED
    assert operation.params["address"] == "bc1qportaltestaddress"
    assert withdrawal.status == Withdrawal.Status.REFUSED
    assert "points to another address" in withdrawal.error
    assert kraken_withdrawals(treasury, exchange_sandbox) == []


def test_a_withdrawal_at_kraken_can_be_cancelled_while_kraken_allows_it(
    treasury: Treasury,
    treasurer: Membership,
    approver: Membership,
    exchange_sandbox: Any,
) -> None:
    withdrawal = request(treasury, treasurer)
    approve(withdrawal, approver)
    withdrawal.refresh_from_db()

    withdrawal = withdrawal_cancel(withdrawal=withdrawal, actor=treasurer)

    assert withdrawal.status == Withdrawal.Status.CANCELLED
    cancel = Operation.objects.get(kind=Kind.WITHDRAW_CANCEL)
    assert cancel.state == State.DONE
    on_kraken = kraken_withdrawals(treasury, exchange_sandbox)
    assert on_kraken[0]["status-prop"] == "canceled"
    with pytest.raises(ValidationError):
        withdrawal_cancel(withdrawal=withdrawal, actor=treasurer)


def test_a_withdrawal_kraken_is_processing_cannot_be_cancelled(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    withdrawal = request(treasury, treasurer)
    approve(withdrawal, approver)
    exchange_sandbox.advance(6)  # one status step: Kraken is processing it
    withdrawals_follow()
    withdrawal.refresh_from_db()
    assert withdrawal.kraken_status in ("Pending", "Settled")

    with pytest.raises(ValidationError, match="no longer allows cancelling"):
        withdrawal_cancel(withdrawal=withdrawal, actor=treasurer)
    assert not Operation.objects.filter(kind=Kind.WITHDRAW_CANCEL).exists()


def test_a_request_waiting_for_approval_is_cancelled_with_its_approval(
    treasury: Treasury, treasurer: Membership
) -> None:
    withdrawal = request(treasury, treasurer)
    withdrawal = withdrawal_cancel(withdrawal=withdrawal, actor=treasurer)
    assert withdrawal.status == Withdrawal.Status.CANCELLED
    assert ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).status == "cancelled"
    assert not Operation.objects.exists()


def test_krakens_hold_is_shown_and_followed_until_the_withdrawal_completes(
    treasury: Treasury, treasurer: Membership, approver: Membership, exchange_sandbox: Any
) -> None:
    exchange_sandbox.control(
        "POST",
        f"/sandbox/accounts/{treasury.desk.account_id}/withdraw-addresses",
        {"asset": "XBT", "key": "review-hold", "address": "bc1qheldaddress", "hold_steps": 2},
    )
    held = Destination.objects.create(
        org=treasurer.org,
        account=treasury.master,
        asset="XBT",
        method="Bitcoin",
        key="review-hold",
        address="bc1qheldaddress",
        status=Destination.Status.ALLOWED,
        requested_by=treasurer.user,
    )
    withdrawal = withdrawal_request(
        requester=treasurer, account=treasury.master, destination=held, asset="BTC", amount="0.01"
    )
    approve(withdrawal, approver)

    exchange_sandbox.advance(6)  # one step: Kraken holds it for review
    withdrawals_follow()
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.ON_HOLD
    assert (withdrawal.kraken_status, withdrawal.kraken_status_prop) == ("Pending", "onhold")

    exchange_sandbox.advance(60)  # released, then processed
    withdrawals_follow()
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.SUCCESS
    assert withdrawal.kraken_status_prop == ""
