"""Requests carried out end to end with real parts: a real Celery worker sends the exchange
operation and follows it through AllocateStatus/DeallocateStatus and Allocations, against the
sandbox with its errors, its clock and a lost answer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for, policy_tiers_replace
from apps.approvals.registry import TierSpec
from apps.approvals.services import approval_decide
from apps.exchange import services as exchange_services
from apps.exchange.models import Operation, State
from apps.notifications.models import Notification
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.staking import services
from apps.staking.models import RewardSnapshot, StakeRequest
from tests.plugins.celery_worker import CeleryWorker
from tests.staking.conftest import DAY, DOT_FLEX, SOL_BONDED, EarnDesk, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

Status = StakeRequest.Status


def ask(membership: Membership, desk: EarnDesk, strategy: str, amount: str, **kw: Any) -> Any:
    row, message = services.stake_request_create(
        membership=membership,
        account=desk.account,
        strategy_id=strategy,
        direction=kw.get("direction", "allocate"),
        amount=Decimal(amount),
    )
    return row, message


def settles(row: StakeRequest, *statuses: str, within: float = 40.0) -> StakeRequest:
    def check() -> StakeRequest | None:
        row.refresh_from_db()
        return row if row.status in statuses else None

    def what() -> str:
        operation = Operation.objects.filter(pk=row.operation_id or 0).first()
        return (
            f"request {row.pk} to reach {statuses}: it is {row.status} ({row.error}); "
            f"operation {operation and operation.state} {operation and operation.error_code}"
        )

    try:
        return wait_for(check, within=within, what="")  # type: ignore[no-any-return]
    except pytest.fail.Exception:
        pytest.fail(what())


def earn_ledger(sandbox: Any, desk: EarnDesk, asset: str) -> list[dict[str, Any]]:
    entries = desk.look(sandbox, "Ledgers", {"asset": asset, "type": "earn"})["ledger"]
    # The spot side of each allocation (the Earn wallet's counterpart is positive).
    return [
        e for e in entries.values() if e.get("subtype") == "allocation" and Decimal(e["amount"]) < 0
    ]


@pytest.fixture(autouse=True)
def _no_approval_needed(earn_prices: None, owner: Membership) -> None:
    """These tests are about Kraken's side: the threshold is out of reach."""
    for kind in (services.KIND_ALLOCATE, services.KIND_DEALLOCATE):
        policy = policy_for(org=owner.org, kind=kind)
        policy_tiers_replace(policy, [TierSpec(Decimal(10**12), 1, (Role.OWNER,))])


def test_an_allocation_goes_pending_then_allocated_and_notifies(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    row, _ = ask(treasurer, desk, DOT_FLEX, "12.5")
    settles(row, Status.PENDING, Status.DONE)
    settles(row, Status.DONE)
    assert Operation.objects.get(pk=row.operation_id).state == State.DONE
    holding = desk.holding(earn_sandbox, DOT_FLEX)
    assert holding is not None
    assert Decimal(holding["amount_allocated"]["allocated"]["native"]) >= Decimal("12.5")
    note = Notification.objects.get(recipient=treasurer.user, kind="staking.completed")
    assert note.title == "Allocation of 12.5 DOT done"
    # A snapshot for the rewards chart is taken once it has settled.
    wait_for(
        RewardSnapshot.objects.filter(account=desk.account, strategy_id=DOT_FLEX).exists,
        within=10,
        what="a reward snapshot",
    )


def test_insufficient_funds_at_kraken_fail_with_a_clear_message(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    # 600 of the 1000 DOT earn in auto-earn: spendable (the portal lets it through), but
    # Kraken pays an allocation from the spot wallet only.
    earn_sandbox.control(
        "POST", f"/sandbox/accounts/{desk.account_id}/auto-earn", {"asset": "DOT", "amount": "600"}
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "500")
    settles(row, Status.FAILED)
    assert row.error.startswith("Not enough DOT available on")
    assert "EEarnings:Insufficient funds" in row.error
    assert Operation.objects.get(pk=row.operation_id).state == State.REJECTED


def test_a_queued_request_starts_when_the_one_ahead_has_finished(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    first, _ = ask(treasurer, desk, DOT_FLEX, "10")
    second, message = ask(treasurer, desk, DOT_FLEX, "11")
    assert second.status == Status.QUEUED
    assert "waits in the queue" in message
    settles(first, Status.DONE)
    settles(second, Status.DONE)
    assert second.operation_id is not None
    amounts = sorted(-Decimal(e["amount"]) for e in earn_ledger(earn_sandbox, desk, "DOT"))
    assert amounts == [Decimal(10), Decimal(11)]  # each sent once


def test_busy_at_kraken_is_a_refusal_with_a_clear_message(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    # Someone allocates outside the portal, and Kraken takes an hour to process it.
    earn_sandbox.configure(earn_delay=3600)
    try:
        desk.look(earn_sandbox, "Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "3"})
    finally:
        earn_sandbox.configure(earn_delay=1)
    row, _ = ask(treasurer, desk, DOT_FLEX, "4")
    settles(row, Status.FAILED)
    operation = Operation.objects.get(pk=row.operation_id)
    assert operation.state == State.REJECTED  # a refusal, not an unknown outcome
    assert operation.error_code.startswith("EEarnings:Busy")
    assert row.error.startswith("Kraken is still processing another allocation or deallocation")


def test_a_failure_reported_on_the_status_call_fails_the_request(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    earn_sandbox.control(
        "POST",
        f"/sandbox/accounts/{desk.account_id}/earn-failures",
        {"strategy_id": DOT_FLEX, "error": "EEarnings:Insufficient funds:Insufficient funds"},
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "7")
    settles(row, Status.FAILED)
    # The call itself was accepted; Kraken reported the failure afterwards.
    assert Operation.objects.get(pk=row.operation_id).state == State.DONE
    assert "Not enough DOT available" in row.error
    spot = Decimal(desk.look(earn_sandbox, "Balance")["DOT"])
    assert spot == Decimal(1000)  # refunded: nothing moved


def test_a_bonded_strategy_bonds_then_unbonds_with_their_ends_shown(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    row, _ = ask(treasurer, desk, SOL_BONDED, "2")
    settles(row, Status.BONDING)
    assert row.expected_end is not None
    earn_sandbox.advance(DAY + 60)
    settles(row, Status.DONE)
    out, _ = ask(treasurer, desk, SOL_BONDED, "1.5", direction="deallocate")
    settles(out, Status.UNBONDING)
    assert out.expected_end is not None
    assert (out.expected_end - out.created_at).total_seconds() > 2.5 * DAY
    # Unbonding does not keep the strategy busy: another deallocation goes to Kraken now.
    again, message = ask(treasurer, desk, SOL_BONDED, "0.5", direction="deallocate")
    assert message == services.SENT
    settles(again, Status.UNBONDING)
    earn_sandbox.advance(3 * DAY + 60)
    settles(out, Status.DONE)
    settles(again, Status.DONE)
    assert Decimal(desk.look(earn_sandbox, "Balance")["SOL"]) == Decimal(100)


def test_a_lost_answer_is_reconciled_and_the_allocation_happens_exactly_once(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    earn_sandbox.set_faults(
        [{"kind": "lost_response", "endpoint": "Earn/Allocate", "probability": 1.0, "count": 1}]
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "9")

    def unknown() -> bool:
        return Operation.objects.get(pk=row.operation_id).state == State.UNKNOWN

    wait_for(unknown, within=30, what="the lost answer to leave the operation UNKNOWN")
    row.refresh_from_db()
    assert row.status == Status.SENDING  # not resent, not failed: the outcome is open
    # The reconciler (beat in production) finds it by the status call and the ledger.
    exchange_services.operation_reconcile(operation_id=row.operation_id)
    assert Operation.objects.get(pk=row.operation_id).state == State.DONE
    settles(row, Status.DONE)
    amounts = [-Decimal(e["amount"]) for e in earn_ledger(earn_sandbox, desk, "DOT")]
    assert amounts == [Decimal(9)]  # once


def test_earn_holdings_are_counted_once_and_never_as_zero(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    row, _ = ask(treasurer, desk, DOT_FLEX, "250")
    settles(row, Status.DONE)
    dot = next(
        b for b in services.balances_current(account=desk.account, force=True) if b.asset == "DOT"
    )
    assert dot.spot == Decimal(750)
    assert Decimal(250) <= dot.earn["flexible"] < Decimal("250.01")  # with its rewards
    assert Decimal(1000) <= dot.total < Decimal("1000.01")  # once: not 1250, not 750
    assert dot.spendable == Decimal(750)  # allocated funds are not spendable
    # While a deallocation is pending, the funds are still Earn funds: never zero anywhere.
    out, _ = ask(treasurer, desk, DOT_FLEX, "250", direction="deallocate")
    settles(out, Status.PENDING, Status.DONE)
    dot = next(
        b for b in services.balances_current(account=desk.account, force=True) if b.asset == "DOT"
    )
    assert Decimal(1000) <= dot.total < Decimal("1000.01")


def _approval_for_everything(owner: Membership) -> None:
    for kind in (services.KIND_ALLOCATE, services.KIND_DEALLOCATE):
        policy_tiers_replace(
            policy_for(org=owner.org, kind=kind),
            [TierSpec(Decimal(0), 1, (Role.OWNER, Role.APPROVER))],
        )


def test_an_approved_request_goes_to_kraken_as_the_member_who_asked(
    desk: EarnDesk,
    treasurer: Membership,
    approver: Membership,
    owner: Membership,
    staking_worker: CeleryWorker,
) -> None:
    _approval_for_everything(owner)
    row, message = ask(treasurer, desk, DOT_FLEX, "5")
    assert message == services.AWAITING_APPROVAL
    approval = ApprovalRequest.objects.get(pk=row.approval_id)
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    settles(row, Status.DONE)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert Operation.objects.get(pk=row.operation_id).requested_by_id == treasurer.user_id


def test_a_rejected_request_is_closed_and_never_sent(
    desk: EarnDesk, treasurer: Membership, approver: Membership, owner: Membership
) -> None:
    _approval_for_everything(owner)
    row, _ = ask(treasurer, desk, DOT_FLEX, "5")
    approval = ApprovalRequest.objects.get(pk=row.approval_id)
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="reject",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    assert services.stake_requests_follow_due() == 1
    row.refresh_from_db()
    assert row.status == Status.CANCELLED
    assert row.error == "The approval request was rejected."
    assert row.operation_id is None


def test_a_lost_answer_to_a_bonded_deallocation_is_found_while_it_unbonds(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    row, _ = ask(treasurer, desk, SOL_BONDED, "2")
    settles(row, Status.BONDING)
    earn_sandbox.advance(DAY + 60)
    settles(row, Status.DONE)
    earn_sandbox.set_faults(
        [{"kind": "lost_response", "endpoint": "Earn/Deallocate", "probability": 1.0, "count": 1}]
    )
    out, _ = ask(treasurer, desk, SOL_BONDED, "2", direction="deallocate")

    def unknown() -> bool:
        return Operation.objects.get(pk=out.operation_id).state == State.UNKNOWN

    wait_for(unknown, within=30, what="the lost answer to leave the operation UNKNOWN")
    earn_sandbox.advance(5)  # processed: nothing is back in spot, the funds unbond for 3 days
    # Nothing in the ledger yet: the unbonding allocation is the trace, not a miss.
    exchange_services.operation_reconcile(operation_id=out.operation_id)
    operation = Operation.objects.get(pk=out.operation_id)
    assert operation.state == State.DONE, operation.reconcile_note
    assert operation.result["unbonding"]
    settles(out, Status.UNBONDING)
    holding = desk.holding(earn_sandbox, SOL_BONDED)
    assert holding is not None
    assert holding["amount_allocated"]["unbonding"]["allocation_count"] == 1  # deallocated once


def test_a_request_whose_hook_never_ran_is_picked_up_by_the_beat(
    desk: EarnDesk, treasurer: Membership
) -> None:
    row, _ = ask(treasurer, desk, DOT_FLEX, "3")
    # The process died between the operation's settling and its hook (nothing was sent here:
    # no worker runs; the operation is marked as a dead worker would have left it).
    Operation.objects.filter(pk=row.operation_id).update(
        state=State.REJECTED,
        error_code="EEarnings:Below min:(De)allocation operation amount less than minimum",
        settled_at=timezone.now() - timedelta(minutes=10),
    )
    assert services.stake_requests_follow_due() == 1
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.error.startswith("Below the strategy's minimum; nothing moved.")


def test_a_lost_answer_whose_status_call_fails_with_an_internal_error_is_still_found(
    desk: EarnDesk, treasurer: Membership, staking_worker: CeleryWorker, earn_sandbox: Any
) -> None:
    # The allocation fails in the background and Kraken's status call then answers the
    # retryable `EGeneral:Internal error`; the answer to the Allocate itself was lost.
    earn_sandbox.control(
        "POST",
        f"/sandbox/accounts/{desk.account_id}/earn-failures",
        {"strategy_id": DOT_FLEX, "error": "EGeneral:Internal error"},
    )
    earn_sandbox.set_faults(
        [{"kind": "lost_response", "endpoint": "Earn/Allocate", "probability": 1.0, "count": 1}]
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "6")

    def unknown() -> bool:
        return Operation.objects.get(pk=row.operation_id).state == State.UNKNOWN

    wait_for(unknown, within=30, what="the lost answer to leave the operation UNKNOWN")
    earn_sandbox.advance(5)  # Kraken processes it, and it fails
    # The status call proves nothing now, but the ledger shows the call was taken: found, not
    # an exception on every look.
    operation = exchange_services.operation_reconcile(operation_id=row.operation_id)
    assert operation.state == State.DONE, operation.reconcile_note
    settles(row, Status.FAILED)
    assert Decimal(desk.look(earn_sandbox, "Balance")["DOT"]) == Decimal(1000)  # refunded
    amounts = [e["amount"] for e in earn_ledger(earn_sandbox, desk, "DOT")]
    assert [Decimal(a) for a in amounts if Decimal(a) < 0] == [Decimal(-6)]  # sent once


def test_a_status_call_that_keeps_failing_leaves_the_operation_unknown_with_the_reason(
    desk: EarnDesk,
    treasurer: Membership,
    staking_worker: CeleryWorker,
    earn_sandbox: Any,
    settings: Any,
) -> None:
    settings.EXCHANGE_MISS_SPACING = 0
    # The Allocate never reaches Kraken (a gateway error before it), so its outcome is open.
    earn_sandbox.set_faults(
        [{"kind": "http_5xx", "endpoint": "Earn/Allocate", "probability": 1.0, "count": 1}]
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "4")

    def unknown() -> bool:
        return Operation.objects.get(pk=row.operation_id).state == State.UNKNOWN

    wait_for(unknown, within=30, what="the gateway error to leave the operation UNKNOWN")
    # Now every status call fails transiently.
    earn_sandbox.set_faults(
        [{"kind": "unavailable", "endpoint": "Earn/AllocateStatus", "probability": 1.0}]
    )
    for _ in range(4):
        operation = exchange_services.operation_reconcile(operation_id=row.operation_id)
        assert operation.state == State.UNKNOWN  # never NOT_PLACED on looks that saw nothing
        assert operation.reconcile_misses == 0
    assert operation.reconcile_note.startswith(
        "Could not look: Kraken's Earn/AllocateStatus answered EService:Unavailable (4 looks"
    ), operation.reconcile_note
    # Kraken answers again: the status call and Allocations agree nothing happened, so the
    # usual spaced misses apply (two here) and it was not placed. Nothing was ever resent.
    earn_sandbox.clear_faults()
    operation = exchange_services.operation_reconcile(operation_id=row.operation_id)
    assert operation.state == State.UNKNOWN
    assert operation.reconcile_misses == 1
    operation = exchange_services.operation_reconcile(operation_id=row.operation_id)
    assert operation.state == State.NOT_PLACED
    assert earn_ledger(earn_sandbox, desk, "DOT") == []
    assert Decimal(desk.look(earn_sandbox, "Balance")["DOT"]) == Decimal(1000)


def test_the_operations_page_shows_why_an_earn_operation_is_still_unknown(
    desk: EarnDesk,
    treasurer: Membership,
    owner: Membership,
    staking_worker: CeleryWorker,
    earn_sandbox: Any,
    client_for: Any,
) -> None:
    earn_sandbox.set_faults(
        [{"kind": "http_5xx", "endpoint": "Earn/Allocate", "probability": 1.0, "count": 1}]
    )
    row, _ = ask(treasurer, desk, DOT_FLEX, "4")

    def unknown() -> bool:
        return Operation.objects.get(pk=row.operation_id).state == State.UNKNOWN

    wait_for(unknown, within=30, what="the gateway error to leave the operation UNKNOWN")
    earn_sandbox.set_faults(
        [{"kind": "http_5xx", "endpoint": "Earn/AllocateStatus", "probability": 1.0}]
    )
    exchange_services.operation_reconcile(operation_id=row.operation_id)
    url = reverse("exchange:operation-list", kwargs={"org": owner.org.slug})
    page = client_for(owner).get(url)
    assert page.status_code == 200
    assert "Could not look: Kraken&#x27;s Earn/AllocateStatus answered" in page.content.decode()
