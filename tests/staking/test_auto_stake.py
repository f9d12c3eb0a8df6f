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
from apps.kraken.services import reference_data_refresh
from apps.orgs.models import Membership
from apps.schedules.models import Run, Workflow
from apps.schedules.services import WorkflowInput, workflow_create, workflow_is_approved
from apps.schedules.ticks import schedules_tick
from apps.staking.models import StakeRequest
from apps.staking.workflow_actions import allocation_amount, asset_places
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


def test_a_ten_decimal_balance_is_cut_down_to_what_the_run_and_kraken_keep(
    desk: EarnDesk,
    treasurer: Membership,
    approver: Membership,
    staking_worker: CeleryWorker,
    earn_sandbox: Any,
    earn_prices: None,
) -> None:
    reference_data_refresh()  # Kraken's Assets: DOT has 10 decimals
    assert asset_places("DOT") == 10
    earn_sandbox.deposit(desk.account_id, "DOT", "0.1234567899")  # spendable 1000.1234567899
    workflow = auto_stake(treasurer, approver, desk)
    run = run_slot(workflow, FIRST_SLOT)
    assert run.state == Run.State.SUCCEEDED, list(run.events.values_list("text", flat=True))
    assert run.inputs["spendable DOT"] == "1000.1234567899"
    # Down, at 8 places: not 100.12345679 (half up), and exactly what the run row holds.
    assert run.amount == Decimal("100.12345678")
    row = settled_request(run)
    assert row.status == "done"
    assert row.amount == Decimal("100.12345678")
    spot = Decimal(desk.look(earn_sandbox, "Balance")["DOT"])
    assert spot == Decimal("900.0000000099")  # never more than the excess left


@pytest.mark.parametrize(
    ("excess", "places", "expected"),
    [
        ("100.1234567899", 10, "100.12345678"),  # 10-decimal asset: the run keeps 8
        ("100.1234567899", 4, "100.1234"),  # a 4-decimal asset (EUR, USD): its own
        ("0.99999", 2, "0.99"),  # down, never up to 1.00
        ("5.123456789", None, "5.12345678"),  # asset unknown: the run's 8
    ],
)
def test_the_allocation_is_cut_down_to_the_assets_decimals_and_at_most_eight(
    excess: str, places: int | None, expected: str
) -> None:
    amount = allocation_amount(Decimal(excess), places)
    assert amount == Decimal(expected)
    assert amount.as_tuple().exponent == Decimal(expected).as_tuple().exponent
