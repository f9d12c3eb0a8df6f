"""The auto-stake workflow action against the sandbox and a real worker: three hourly slots of
"keep 900 DOT spendable, allocate the rest to the DOT flexible strategy" — the first allocates
the excess, the second what was deposited since, the third finds nothing to do; a slot claimed
twice runs once, and each run asks once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_decide
from apps.orgs.models import Membership
from apps.schedules.models import Run, Workflow
from apps.schedules.services import WorkflowInput, workflow_create, workflow_is_approved
from apps.schedules.ticks import schedules_tick
from apps.staking.models import StakeRequest
from tests.plugins.celery_worker import CeleryWorker
from tests.schedules.conftest import rewind
from tests.staking.conftest import DOT_FLEX, EarnDesk, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FIRST_SLOT = datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC)


def auto_stake(treasurer: Membership, approver: Membership, desk: EarnDesk) -> Workflow:
    workflow = workflow_create(
        membership=treasurer,
        data=WorkflowInput(
            name="Stake idle DOT",
            account_id=desk.account.pk,
            schedule_kind="cron",
            cron="0 * * * *",
            timezone="UTC",
            interval_minutes=None,
            action="staking.auto_stake",
            params={"strategy_id": DOT_FLEX, "keep": "900"},
            per_run_cap=Decimal(500),
            per_day_cap=Decimal(1000),
            approval_mode="once",
            catch_up="skip",
        ),
    )
    # Approved once, with its caps, by an approver (the workflow's own approval request).
    approval = ApprovalRequest.objects.get(pk=workflow.approval_request_id or 0)
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    workflow.refresh_from_db()
    assert workflow_is_approved(workflow)
    return workflow


def run_slot(workflow: Workflow, at: datetime) -> Run:
    rewind(workflow, to=at - timedelta(minutes=1))
    created = schedules_tick(now=at).created
    assert len(created) == 1
    assert schedules_tick(now=at).created == []  # the same slot is never claimed twice
    run = Run.objects.get(pk=created[0])

    def settled() -> Run | None:
        run.refresh_from_db()
        return run if run.state in Run.SETTLED else None

    return wait_for(settled, within=40, what=f"run {run.pk} to settle")  # type: ignore[no-any-return]


def settled_request(run: Run) -> StakeRequest:
    row = StakeRequest.objects.get(idempotency_key=f"schedules.run:{run.pk}")

    def done() -> StakeRequest | None:
        row.refresh_from_db()
        return row if row.status in ("done", "failed") else None

    return wait_for(done, within=40, what=f"request {row.pk} to finish")  # type: ignore[no-any-return]


def test_an_auto_stake_workflow_across_three_slots(
    desk: EarnDesk,
    treasurer: Membership,
    approver: Membership,
    staking_worker: CeleryWorker,
    earn_sandbox: Any,
    earn_prices: None,
) -> None:
    workflow = auto_stake(treasurer, approver, desk)

    first = run_slot(workflow, FIRST_SLOT)
    assert first.state == Run.State.SUCCEEDED, list(first.events.values_list("text", flat=True))
    assert first.amount == Decimal(100)
    assert first.inputs["spendable DOT"] == "1000"
    assert settled_request(first).status == "done"

    earn_sandbox.deposit(desk.account_id, "DOT", "40")
    second = run_slot(workflow, FIRST_SLOT + timedelta(hours=1))
    assert second.state == Run.State.SUCCEEDED, list(second.events.values_list("text", flat=True))
    assert second.amount == Decimal(40)  # rewards earn in Earn and are not spendable
    assert settled_request(second).status == "done"

    third = run_slot(workflow, FIRST_SLOT + timedelta(hours=2))
    assert third.state == Run.State.NOTHING_TO_DO, third.decision
    assert StakeRequest.objects.count() == 2
    holding = desk.holding(earn_sandbox, DOT_FLEX)
    assert holding is not None
    assert Decimal(140) <= Decimal(holding["amount_allocated"]["allocated"]["native"]) < 141
