"""A due slot carried through by a real Celery worker: the tick enqueues, the worker's thin
task calls the service, which claims, decides and executes once, however often it is asked."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.schedules.models import Run
from apps.schedules.tasks import run_execute_task
from apps.schedules.ticks import schedules_tick
from tests.schedules import actions
from tests.schedules.conftest import approve_once, rewind

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def settled(run_id: int, timeout: float = 45.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_settled:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is still {Run.objects.get(pk=run_id).state}")


def test_a_due_slot_runs_through_the_worker_once(celery_worker_proc, make_workflow) -> None:
    actions.balance_set("ETH", "12.25")
    params = {"asset": "ETH", "keep": "10", "destination": "cold-eth"}
    workflow = approve_once(make_workflow(approval_mode="once", cron="* * * * *", params=params))
    rewind(workflow, to=timezone.now() - timedelta(seconds=61))
    created = schedules_tick().created
    assert created, "no slot was due"
    for run_id in created:
        # The same run asked for again, as a redelivered or duplicated task would.
        run_execute_task.delay(run_id)
        run_execute_task.delay(run_id)
    runs = [settled(run_id) for run_id in created]
    assert {run.state for run in runs} == {Run.State.SUCCEEDED}
    first = runs[0]
    assert first.amount == 2.25
    assert first.inputs == {"spendable ETH": "12.25", "keep": "10"}
    assert actions.execute_calls() == len(created)
    assert next(iter(actions.moves().values())) == "2.25 ETH"
    assert "apps.schedules.tasks.run_execute_task" in celery_worker_proc.log()
