"""Thin tasks: ids in, one service call. None retries itself: the tick sweeps runs whose task
or worker was lost (ticks._sweep_stale) and the services claim their rows."""

from __future__ import annotations

from celery import shared_task

from apps.schedules import runs, ticks


@shared_task(name="apps.schedules.tasks.schedules_tick_task")
def schedules_tick_task() -> str:
    return str(ticks.schedules_tick())


@shared_task(name="apps.schedules.tasks.runs_dispatch_task")
def runs_dispatch_task(run_ids: list[int]) -> int:
    ticks.runs_dispatch(run_ids)
    return len(run_ids)


@shared_task(name="apps.schedules.tasks.run_execute_task")
def run_execute_task(run_id: int) -> str:
    run = runs.run_execute(run_id=run_id)
    return "nothing to claim" if run is None else run.state
