"""The treasury's workflow actions against the sandbox, through the scheduler: a sweep that
finds nothing to move records "nothing to do"; a sweep above what is kept sends one withdrawal
to the allow-listed address under the workflow's approval given once; a top-up transfers from
the master to its subaccount; a run asked again does not send twice; removing the destination
pauses the workflow."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_decide
from apps.exchange.models import Kind, Operation, State
from apps.exchange.services import balances_refresh
from apps.funding import workflow_actions
from apps.funding.models import Transfer, Withdrawal
from apps.funding.services.destinations import destination_remove
from apps.orgs.models import Membership
from apps.schedules import runs as run_service
from apps.schedules.models import Run, Workflow
from apps.schedules.services import WorkflowInput, workflow_create, workflow_next_slot
from apps.schedules.ticks import schedules_tick
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def workflow(
    treasurer: Membership, approver: Membership, account: Any, action: str, params: dict[str, Any]
) -> Workflow:
    """A workflow approved once with its caps, through the real approval."""
    made = workflow_create(
        membership=treasurer,
        data=WorkflowInput(
            name=f"{action} every minute",
            account_id=account.pk,
            schedule_kind="cron",
            cron="* * * * *",
            timezone="Europe/London",
            interval_minutes=None,
            action=action,
            params=params,
            per_run_cap=Decimal("1"),
            per_day_cap=Decimal("2"),
            approval_mode="once",
            catch_up="skip",
        ),
    )
    approval = ApprovalRequest.objects.get(pk=made.approval_request_id or 0)
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    made.refresh_from_db()
    return made


def due_run(made: Workflow) -> Run:
    slot = workflow_next_slot(made, after=timezone.now() - timedelta(seconds=61))
    Workflow.objects.filter(pk=made.pk).update(next_slot=slot.key, next_slot_at=slot.at)
    created = schedules_tick().created
    assert created
    return Run.objects.get(pk=created[0])


def test_a_sweep_that_finds_nothing_to_move_records_nothing_to_do(
    treasury: Treasury, treasurer, approver
) -> None:
    balances_refresh(account=treasury.master)
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "XBT", "keep": "10", "target": target},
    )
    assert made.params["asset"] == "BTC"
    run = due_run(made)
    assert run.state == Run.State.NOTHING_TO_DO
    assert run.decision == "5 BTC spendable, not above the 10 kept."
    assert run.inputs["spendable BTC on " + treasury.master.label] == "5"
    assert not Withdrawal.objects.exists()
    assert not Operation.objects.filter(kind=Kind.WITHDRAW).exists()


def test_a_sweep_sends_the_excess_once_to_the_allow_listed_address(
    treasury: Treasury, treasurer, approver
) -> None:
    balances_refresh(account=treasury.master)
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "BTC", "keep": "4.9", "target": target},
    )
    run = due_run(made)
    assert run.state == Run.State.SUCCEEDED, run.events.last().text
    withdrawal = Withdrawal.objects.get()
    assert withdrawal.source == f"schedules.run:{run.pk}"
    assert withdrawal.amount == Decimal("0.1")
    assert withdrawal.approval_id == made.approval_request_id  # sent under the once-approval
    assert Operation.objects.get(kind=Kind.WITHDRAW).state == State.DONE
    assert run.reference["url"].endswith(f"/treasury/withdrawals/{withdrawal.pk}/")
    # Asked again (a lost worker's run carried on): the same withdrawal, nothing sent twice.
    Run.objects.filter(pk=run.pk).update(state=Run.State.EXECUTING)
    run_service.run_act(run_id=run.pk)
    assert Withdrawal.objects.count() == 1
    assert Operation.objects.filter(kind=Kind.WITHDRAW).count() == 1


def test_a_top_up_transfers_from_the_master_to_its_subaccount(
    treasury: Treasury, treasurer, approver
) -> None:
    balances_refresh(account=treasury.master)
    made = workflow(
        treasurer,
        approver,
        treasury.sub,
        workflow_actions.TOP_UP,
        {"asset": "BTC", "level": "0.25"},
    )
    run = due_run(made)
    assert run.state == Run.State.SUCCEEDED, run.events.last().text
    transfer = Transfer.objects.get()
    assert (transfer.from_account, transfer.to_account) == (treasury.master, treasury.sub)
    assert transfer.amount == Decimal("0.25")
    assert transfer.source == f"schedules.run:{run.pk}"
    assert "Top Operations up with 0.25 BTC" in run.decision


def test_removing_the_destination_pauses_the_workflows_sending_to_it(
    treasury: Treasury, treasurer, approver, owner
) -> None:
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "BTC", "keep": "1", "target": target},
    )
    destination_remove(destination=treasury.destination, actor=owner)
    made.refresh_from_db()
    assert made.status == Workflow.Status.PAUSED
    assert WITHDRAW_KEY_TEXT in made.paused_reason


WITHDRAW_KEY_TEXT = "was removed from the address book"


def test_a_sweep_reads_the_balance_again_rather_than_overdraw_on_a_stale_one(
    treasury: Treasury, treasurer, approver
) -> None:
    from apps.exchange.models import AccountBalance

    balances_refresh(account=treasury.master)  # 5 BTC
    # An hour-old read that shows more than there is now (say, before a withdrawal elsewhere).
    stale = AccountBalance.objects.filter(account=treasury.master, asset="BTC", wallet_type="spot")
    assert stale.update(balance=Decimal("5.6"), updated_at=timezone.now() - timedelta(hours=1))
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "BTC", "keep": "4.9", "target": target},
    )
    run = due_run(made)
    assert run.state == Run.State.SUCCEEDED, run.events.last().text
    # Decided on the balance read now (5), not the stale 5.6: 0.1 moved, not 0.7.
    assert Withdrawal.objects.get().amount == Decimal("0.1")
    assert run.inputs["spendable BTC on " + treasury.master.label] == "5"


def test_a_sweep_refuses_a_stale_balance_it_cannot_read_again(
    treasury: Treasury, treasurer, approver, owner
) -> None:
    from apps.exchange.models import AccountBalance
    from apps.vault.services import credential_designate

    balances_refresh(account=treasury.master)
    AccountBalance.objects.filter(account=treasury.master).update(
        updated_at=timezone.now() - timedelta(hours=1)
    )
    # No designated read key: the balances cannot be read again.
    credential_designate(credential=treasury.desk.credential, actor=owner, designated=False)
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "BTC", "keep": "4.9", "target": target},
    )
    run = due_run(made)
    assert run.state != Run.State.SUCCEEDED
    assert "nothing is decided on a stale balance" in " ".join(e.text for e in run.events.all())
    assert not Withdrawal.objects.exists()
    assert not Operation.objects.filter(kind=Kind.WITHDRAW).exists()


def test_a_sweep_of_a_ten_decimal_balance_sends_it_rounded_down_to_eight(
    treasury: Treasury, treasurer, approver, exchange_sandbox
) -> None:
    exchange_sandbox.deposit(treasury.desk.account_id, "XBT", "0.1234567895")
    balances_refresh(account=treasury.master)
    target = f"destination:{treasury.destination.pk}"
    made = workflow(
        treasurer,
        approver,
        treasury.master,
        workflow_actions.SWEEP,
        {"asset": "BTC", "keep": "5", "target": target},
    )
    run = due_run(made)
    assert run.state == Run.State.SUCCEEDED, run.events.last().text
    assert run.inputs["spendable BTC on " + treasury.master.label] == "5.1234567895"
    withdrawal = Withdrawal.objects.get()
    # Down, never up: 0.12345678 (PostgreSQL's rounding of the Run's column would say ...79).
    assert withdrawal.amount == Decimal("0.12345678")
    assert run.amount == Decimal("0.12345678")
