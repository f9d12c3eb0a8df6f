"""Runs from decision to outcome: inputs and decision recorded, caps, approvals (once with its
caps, or each run), duplicates and lost workers, failures; notified and audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import SELF_APPROVAL, approval_decide
from apps.audit.models import AuditRecord
from apps.notifications.models import Notification
from apps.schedules import runs as run_service
from apps.schedules.models import Run, Workflow
from apps.schedules.services import workflow_is_approved, workflow_update
from apps.schedules.ticks import TickReport, schedules_tick
from kraken_portal.celery import app
from tests.market.conftest import market_redis  # noqa: F401 - a fixture frozen_prices uses
from tests.market.test_conversion import frozen_prices  # noqa: F401 - a fixture
from tests.schedules import actions
from tests.schedules.conftest import approve_once, rewind, workflow_input

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC)


@pytest.fixture(autouse=True)
def tasks_run_in_process() -> Iterator[None]:
    """The tick's tasks run in this process on commit (no worker here; the worker's own test
    is below), so a tick carries its runs through."""
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


def due_run(workflow: Workflow, *, now: datetime = NOW) -> Run:
    rewind(workflow, to=now - timedelta(minutes=1))
    created = schedules_tick(now=now).created
    assert len(created) == 1
    return Run.objects.get(pk=created[0])


def later_tick() -> TickReport:
    """A tick at the current time that claims no new slot: every workflow's next slot is put a
    day ahead (else a test run within the grace after the hour would also claim that hour's
    slot), so it only sweeps."""
    Workflow.objects.update(next_slot_at=timezone.now() + timedelta(days=1))
    return schedules_tick()


def queued_run(workflow: Workflow) -> Run:
    """A run as the tick leaves it, whose task was lost (no task is sent: a session's worker
    would otherwise take it)."""
    return Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-06-01T10:00 Europe/London",
        scheduled_at=NOW,
    )


def test_a_sweep_that_finds_nothing_to_move_records_nothing_to_do(make_workflow, treasurer) -> None:
    actions.balance_set("BTC", "0.75")
    run = due_run(approve_once(make_workflow(approval_mode="once")))
    assert run.state == Run.State.NOTHING_TO_DO
    assert run.decision == "0.75 BTC spendable, not above the 1 kept."
    assert run.inputs == {"spendable BTC": "0.75", "keep": "1"}
    assert run.amount == 0
    assert actions.moves() == {}
    assert actions.execute_calls() == 0
    assert list(run.events.values_list("state", flat=True)) == [
        "created",
        "running",
        "nothing_to_do",
    ]
    assert AuditRecord.objects.filter(action="schedules.run_nothing_to_do").count() == 1
    assert Notification.objects.filter(
        kind="schedules.run_nothing", recipient=treasurer.user
    ).exists()


def test_an_approved_once_workflow_moves_the_excess(make_workflow) -> None:
    actions.balance_set("BTC", "3.5")
    run = due_run(approve_once(make_workflow(approval_mode="once")))
    assert run.state == Run.State.SUCCEEDED
    assert run.amount == Decimal("2.5")
    assert run.inputs["spendable BTC"] == "3.5"
    assert run.reference["id"] == f"schedules.run:{run.pk}"
    assert run.outcome == "Moved 2.5 BTC"
    assert actions.moves() == {f"schedules.run:{run.pk}": "2.5 BTC"}
    record = AuditRecord.objects.get(action="schedules.run_succeeded")
    assert record.detail["amount"] == "2.5"
    assert record.detail["inputs"] == {"spendable BTC": "3.5", "keep": "1"}


def test_a_decided_amount_beyond_eight_decimals_is_cut_down_never_rounded_up(
    make_workflow,
) -> None:
    # 2.1234567895 above the kept 1: PostgreSQL would round the 9th decimal up, moving more
    # than the action decided; the run stores and executes the amount cut down.
    actions.balance_set("BTC", "3.1234567895")
    run = due_run(approve_once(make_workflow(approval_mode="once")))
    assert run.state == Run.State.SUCCEEDED
    assert run.amount == Decimal("2.12345678")
    assert actions.moves() == {f"schedules.run:{run.pk}": "2.12345678 BTC"}


def test_caps_reduce_a_sweep_and_stop_it_once_the_day_is_used(make_workflow) -> None:
    actions.balance_set("BTC", "100")
    workflow = approve_once(make_workflow(approval_mode="once", per_run_cap="4", per_day_cap="10"))
    first = due_run(workflow, now=NOW)
    second = due_run(workflow, now=NOW + timedelta(hours=1))
    third = due_run(workflow, now=NOW + timedelta(hours=2))
    fourth = due_run(workflow, now=NOW + timedelta(hours=3))
    assert [r.amount for r in (first, second, third)] == [Decimal(4), Decimal(4), Decimal(2)]
    assert "Reduced from 99 to 4 BTC" in first.decision
    assert fourth.state == Run.State.BLOCKED
    assert fourth.outcome == ""
    assert "cap is used up" in fourth.events.last().text
    # The next day (in the workflow's zone) starts afresh.
    fifth = due_run(workflow, now=NOW + timedelta(days=1))
    assert fifth.amount == Decimal(4)


def test_a_workflow_not_approved_yet_runs_nothing(make_workflow) -> None:
    actions.balance_set("BTC", "3")
    workflow = make_workflow(approval_mode="once")
    assert (
        ApprovalRequest.objects.filter(kind="funding.workflow", subject_id=str(workflow.pk)).count()
        == 1
    )
    run = due_run(workflow)
    assert run.state == Run.State.BLOCKED
    assert actions.execute_calls() == 0
    assert Notification.objects.filter(kind="schedules.run_failed").exists()


def test_approving_the_workflow_once_lets_its_runs_execute(
    make_workflow, treasurer, approver, django_capture_on_commit_callbacks
) -> None:
    actions.balance_set("BTC", "3")
    workflow = make_workflow(approval_mode="once")
    approval = ApprovalRequest.objects.get(kind="funding.workflow")
    with pytest.raises(ValidationError, match=SELF_APPROVAL):
        approval_decide(
            approval=approval,
            actor=treasurer,
            verdict="approve",
            fingerprint_seen=approval.fingerprint,
            stepped_up=True,
        )
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    workflow.refresh_from_db()
    assert workflow_is_approved(workflow)
    run = due_run(workflow)
    assert run.state == Run.State.SUCCEEDED
    # The action was told which approval covers the run (funding's `preapproved`).
    assert actions.approvals_used() == {f"schedules.run:{run.pk}": str(approval.pk)}


def test_changing_the_caps_or_destination_voids_the_approval_but_the_schedule_does_not(
    make_workflow, treasurer
) -> None:
    workflow = approve_once(make_workflow(approval_mode="once"))
    workflow = workflow_update(
        membership=treasurer,
        workflow=workflow,
        data=workflow_input(treasurer, approval_mode="once", cron="15 * * * *"),
    )
    assert workflow_is_approved(workflow)
    workflow = workflow_update(
        membership=treasurer,
        workflow=workflow,
        data=workflow_input(treasurer, approval_mode="once", per_day_cap="11"),
    )
    assert not workflow_is_approved(workflow)
    record = AuditRecord.objects.filter(action="schedules.workflow_update").latest("id")
    assert record.detail["approval_voided"] is True
    workflow = approve_once(workflow)
    params = {"asset": "BTC", "keep": "1", "destination": "elsewhere"}
    workflow = workflow_update(
        membership=treasurer,
        workflow=workflow,
        data=workflow_input(treasurer, approval_mode="once", per_day_cap="11", params=params),
    )
    assert not workflow_is_approved(workflow)


@pytest.mark.usefixtures("frozen_prices")
def test_each_run_waits_for_its_own_approval_then_executes(
    make_workflow, treasurer, approver
) -> None:
    actions.balance_set("BTC", "2")
    workflow = make_workflow(approval_mode="each_run")
    run = due_run(workflow)
    assert run.state == Run.State.AWAITING_APPROVAL
    approval = run.approval_request
    assert approval is not None
    assert approval.summary["amount"] == "1"
    assert approval.requester_id == treasurer.user_id
    assert actions.execute_calls() == 0
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    run.refresh_from_db()
    assert run.state == Run.State.SUCCEEDED
    assert actions.moves() == {f"schedules.run:{run.pk}": "1 BTC"}
    assert actions.approvals_used() == {f"schedules.run:{run.pk}": str(approval.pk)}


def test_a_duplicated_task_finds_nothing_to_claim(make_workflow) -> None:
    actions.balance_set("BTC", "2")
    run = due_run(approve_once(make_workflow(approval_mode="once")))
    assert run.state == Run.State.SUCCEEDED
    assert run_service.run_execute(run_id=run.pk) is not None  # settled: nothing more happens
    Run.objects.filter(pk=run.pk).update(state=Run.State.RUNNING)
    assert run_service.run_execute(run_id=run.pk).state == Run.State.RUNNING  # not its claim
    assert actions.execute_calls() == 1


def test_a_run_whose_worker_was_lost_while_executing_is_carried_on_once(make_workflow) -> None:
    actions.balance_set("BTC", "2")
    run = due_run(approve_once(make_workflow(approval_mode="once")))
    # As if the worker died after the action made its move but before the answer was recorded.
    Run.objects.filter(pk=run.pk).update(
        state=Run.State.EXECUTING, updated_at=timezone.now() - timedelta(minutes=10)
    )
    report = later_tick()
    assert report.requeued == 1
    run.refresh_from_db()
    assert run.state == Run.State.SUCCEEDED
    assert actions.execute_calls() == 2  # called again...
    assert actions.moves() == {f"schedules.run:{run.pk}": "1 BTC"}  # ...and moved once


def test_a_run_lost_while_deciding_goes_back_to_the_queue(make_workflow) -> None:
    actions.balance_set("BTC", "2")
    workflow = approve_once(make_workflow(approval_mode="once"))
    run = queued_run(workflow)
    Run.objects.filter(pk=run.pk).update(
        state=Run.State.RUNNING, updated_at=timezone.now() - timedelta(minutes=10)
    )
    assert later_tick().requeued == 1
    run.refresh_from_db()
    assert run.state == Run.State.SUCCEEDED
    assert "worker was lost" in run.events.get(state="created", text__contains="lost").text


def test_a_refused_action_fails_the_run_with_its_reason(make_workflow, treasurer) -> None:
    actions.balance_set("BTC", "2")
    params = {"asset": "BTC", "keep": "1", "destination": "refuses"}
    run = due_run(approve_once(make_workflow(approval_mode="once", params=params)))
    assert run.state == Run.State.FAILED
    assert run.outcome == actions.REFUSE
    assert Notification.objects.filter(
        kind="schedules.run_failed", recipient=treasurer.user, body__contains=actions.REFUSE
    ).exists()


def test_a_paused_workflows_queued_run_does_nothing(make_workflow, treasurer) -> None:
    from apps.schedules.services import workflow_pause

    actions.balance_set("BTC", "2")
    workflow = approve_once(make_workflow(approval_mode="once"))
    run = queued_run(workflow)
    workflow_pause(membership=treasurer, workflow=workflow, reason="Destination removed")
    after = run_service.run_execute(run_id=run.pk)
    assert after is not None
    assert after.state == Run.State.BLOCKED
    assert actions.execute_calls() == 0


@pytest.mark.usefixtures("frozen_prices")
def test_a_rejected_run_approval_leaves_waiting_and_is_not_run(
    make_workflow, treasurer, approver
) -> None:
    actions.balance_set("BTC", "2")
    run = due_run(make_workflow(approval_mode="each_run"))
    assert run.state == Run.State.AWAITING_APPROVAL
    approval = run.approval_request
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="reject",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    # Still waiting until the beat's next tick sees the rejection.
    run.refresh_from_db()
    assert run.state == Run.State.AWAITING_APPROVAL
    report = later_tick()
    assert report.approvals_ended == 1
    run.refresh_from_db()
    assert run.state == Run.State.BLOCKED
    reason = run_service.APPROVAL_REJECTED.format(who="approver@acme.test")
    assert run.outcome == reason
    assert run.events.last().text == reason
    assert actions.execute_calls() == 0
    assert Notification.objects.filter(
        kind="schedules.run_failed", recipient=treasurer.user, body=reason
    ).exists()
    assert AuditRecord.objects.filter(
        action="schedules.run_blocked", target_id=str(run.pk), detail__outcome=reason
    ).exists()
    # A second tick finds nothing more to do.
    assert later_tick().approvals_ended == 0


@pytest.mark.usefixtures("frozen_prices")
def test_an_expired_run_approval_leaves_waiting_and_is_not_run(make_workflow, treasurer) -> None:
    actions.balance_set("BTC", "2")
    run = due_run(make_workflow(approval_mode="each_run"))
    approval = run.approval_request
    # Not expired yet: the run keeps waiting.
    assert later_tick().approvals_ended == 0
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert later_tick().approvals_ended == 1
    run.refresh_from_db()
    assert run.state == Run.State.BLOCKED
    assert run.outcome == run_service.APPROVAL_EXPIRED
    assert Notification.objects.filter(
        kind="schedules.run_failed", recipient=treasurer.user, body=run_service.APPROVAL_EXPIRED
    ).exists()
    assert AuditRecord.objects.filter(
        action="schedules.run_blocked", target_id=str(run.pk)
    ).exists()
    # Approving it afterwards runs nothing.
    assert actions.execute_calls() == 0


@pytest.mark.usefixtures("frozen_prices")
def test_a_runs_approval_is_valued_in_the_reporting_currency_and_its_tier_chosen_by_value(
    make_workflow, treasurer, approver, owner
) -> None:
    from apps.approvals.policies import policy_for, policy_tiers_replace
    from apps.approvals.registry import TierSpec
    from apps.market.conversion import value_in
    from apps.orgs.permissions import Role

    rate = value_in(asset="BTC", quantity=Decimal(1), currency="USD").rate
    # Above half a bitcoin's value, two approvals; below, one.
    policy = policy_for(org=treasurer.org, kind="funding.workflow")
    policy_tiers_replace(
        policy,
        (
            TierSpec(Decimal(0), 1, (Role.OWNER, Role.APPROVER)),
            TierSpec((rate / 2).quantize(Decimal(1)), 2, (Role.OWNER, Role.APPROVER)),
        ),
    )
    actions.balance_set("BTC", "1.25")
    small = due_run(make_workflow(name="Small", approval_mode="each_run"))
    actions.balance_set("BTC", "2")
    large = due_run(make_workflow(name="Large", approval_mode="each_run"))
    for run, amount, approvals in ((small, "0.25", 1), (large, "1", 2)):
        approval = run.approval_request
        assert approval is not None
        assert approval.currency == "USD"
        exact = Decimal(amount) * rate
        assert approval.value == exact.quantize(Decimal("1e-8"), rounding=ROUND_CEILING)
        assert Decimal(approval.summary["rate"]) == rate
        assert approval.summary["value"] == format(approval.value.normalize(), "f")
        assert approval.required_approvals == approvals
    # One approval is not enough for the large run's tier.
    approval = large.approval_request
    approval_decide(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    large.refresh_from_db()
    assert large.state == Run.State.AWAITING_APPROVAL
    approval_decide(
        approval=approval,
        actor=owner,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )
    large.refresh_from_db()
    assert large.state == Run.State.SUCCEEDED


@pytest.mark.usefixtures("frozen_prices")
def test_a_run_that_cannot_be_valued_on_a_stale_price_asks_nothing_and_says_why(
    make_workflow, treasurer, settings
) -> None:
    settings.MARKET_PRICE_MAX_AGE = 0.001
    actions.balance_set("BTC", "2")
    run = due_run(make_workflow(approval_mode="each_run"))
    assert run.state == Run.State.BLOCKED
    assert run.approval_request is None
    assert not ApprovalRequest.objects.filter(kind="funding.workflow").exists()
    assert "could not be valued" in run.outcome
    assert "BTC/USD price is" in run.outcome
    assert Notification.objects.filter(
        kind="schedules.run_failed", recipient=treasurer.user, body=run.outcome
    ).exists()


def test_whoever_changes_a_waiting_workflows_terms_cannot_approve_them(
    make_workflow, treasurer, owner, approver
) -> None:
    # The reviewer's scenario: an owner (who may both set up and approve) edits a treasurer's
    # waiting workflow. The waiting request was reused with the treasurer as requester, so the
    # owner could approve what he had just set himself.
    workflow = make_workflow(approval_mode="once")
    first = ApprovalRequest.objects.get(kind="funding.workflow")
    changed = workflow_input(
        owner, approval_mode="once", params={"asset": "BTC", "keep": "0", "destination": "x-9"}
    )
    workflow = workflow_update(membership=owner, workflow=workflow, data=changed)
    first.refresh_from_db()
    assert first.status == ApprovalRequest.Status.CANCELLED
    asked = ApprovalRequest.objects.filter(kind="funding.workflow").exclude(pk=first.pk).get()
    assert asked.requester_id == owner.user_id
    with pytest.raises(ValidationError, match=SELF_APPROVAL):
        approval_decide(
            approval=asked,
            actor=owner,
            verdict="approve",
            fingerprint_seen=asked.fingerprint,
            stepped_up=True,
        )
    approval_decide(
        approval=asked,
        actor=approver,
        verdict="approve",
        fingerprint_seen=asked.fingerprint,
        stepped_up=True,
    )
    workflow.refresh_from_db()
    assert workflow_is_approved(workflow)


@pytest.mark.usefixtures("frozen_prices")
def test_a_runs_approval_is_asked_in_the_name_of_whoever_last_set_the_terms(
    make_workflow, treasurer, owner
) -> None:
    actions.balance_set("BTC", "3")
    workflow = make_workflow(approval_mode="each_run")
    changed = workflow_input(owner, params={"asset": "BTC", "keep": "0.5", "destination": "x-9"})
    workflow = workflow_update(membership=owner, workflow=workflow, data=changed)
    run = due_run(workflow)
    assert run.state == Run.State.AWAITING_APPROVAL
    assert run.approval_request is not None
    assert run.approval_request.requester_id == owner.user_id
