"""The beat's tick: claim every due slot exactly once, then hand each new run to a task.

Exactly once rests on two things, either of which alone would do:
- the due workflows are locked with SELECT … FOR UPDATE SKIP LOCKED, so two beat processes
  ticking at once split the work instead of doing it twice, and a workflow being edited is not
  claimed with its old schedule;
- each run is inserted with INSERT … ON CONFLICT (workflow, slot) DO NOTHING RETURNING id,
  against the unique constraint on (workflow, slot): whatever a stale or racing tick believes,
  a slot already claimed is not claimed again, and only the inserting tick enqueues its run.

The runs and the workflow's cursor (its next unclaimed slot) commit in one transaction, so a
beat killed in the middle of a tick leaves either nothing (the next tick claims the slots) or
everything (the next tick finds the cursor moved on). The task that executes a run claims it
with a conditional update, so enqueuing a run twice (the stale-run sweep below) is harmless.

Catch-up: a slot more than SCHEDULES_CATCHUP_GRACE seconds overdue was missed (the beat or the
database was down). The workflow's rule decides: `skip` leaves every missed slot out (audited
with their count), `run_once` runs the latest missed slot once, marked late, and leaves out the
others. A slot within the grace is simply on time, however many ticks it took to be claimed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.trail import audit_record
from apps.schedules.models import Run, RunEvent, Workflow
from apps.schedules.slots import WALL_FORMAT, Slot, slots_after

logger = logging.getLogger(__name__)

BATCH = 1000
# A run still queued this long after it was created lost its task (a broker hiccup, a worker
# restart): it is enqueued again. The claim in runs.run_execute dedups.
QUEUED_STALE = timedelta(seconds=60)
# A run deciding or executing for this long lost its worker: far above the task's hard time
# limit (90 s), so no live worker still holds it.
WORKING_STALE = timedelta(minutes=5)


def grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "SCHEDULES_CATCHUP_GRACE", 300))


@dataclass
class TickReport:
    created: list[int] = field(default_factory=list)
    skipped: int = 0
    late: int = 0
    requeued: int = 0
    approvals_ended: int = 0

    def __str__(self) -> str:
        return (
            f"{len(self.created)} run(s) created, {self.late} late, {self.skipped} slot(s) "
            f"skipped, {self.requeued} requeued"
        )


@dataclass
class _Plan:
    runs: list[tuple[Slot, bool]]  # (slot, late)
    skipped: int
    skipped_first: Slot | None
    skipped_last: Slot | None
    cursor: Slot


def _cursor_wall(workflow: Workflow) -> datetime | None:
    try:
        # A wall time: naive on purpose (its zone is the slot's other half).
        return datetime.strptime(workflow.next_slot.split(" ", 1)[0], WALL_FORMAT)  # noqa: DTZ007
    except (ValueError, IndexError):
        return None


def plan(workflow: Workflow, *, now: datetime) -> _Plan:
    """The slots of `workflow` due by `now` from its cursor on, split into runs and skips,
    and the new cursor (the first slot after `now`). Pure: reads nothing but the workflow."""
    start_at = workflow.next_slot_at or now
    start_wall = _cursor_wall(workflow)
    on_time_from = now - grace()
    runs: list[tuple[Slot, bool]] = []
    missed = 0
    first: Slot | None = None
    last: Slot | None = None
    before_last: Slot | None = None
    iterator = slots_after(
        kind=workflow.schedule_kind,
        after=start_at - timedelta(seconds=1),
        cron=workflow.cron,
        zone=workflow.timezone,
        interval_minutes=workflow.interval_minutes,
        anchor=workflow.anchor,
    )
    cursor: Slot | None = None
    for slot in iterator:
        if slot.at > now:
            cursor = slot
            break
        # Slots sharing the cursor's instant (wall times in a clocks-forward gap) are ordered
        # by wall time; those before the cursor's were claimed already.
        if slot.at == start_at and start_wall is not None and slot.wall < start_wall:
            continue
        if slot.at < on_time_from:
            missed += 1
            first = first or slot
            before_last, last = last, slot
        else:
            runs.append((slot, False))
    if cursor is None:  # schedules never end; this keeps the type checker sure of it
        raise ValueError("the schedule ended")
    if last is not None and workflow.catch_up == Workflow.CatchUp.RUN_ONCE:
        runs.insert(0, (last, True))
        missed -= 1
        last = before_last if missed else None
        first = first if missed else None
    return _Plan(runs=runs, skipped=missed, skipped_first=first, skipped_last=last, cursor=cursor)


def _insert_runs(rows: list[tuple[Workflow, Slot, bool]]) -> list[int]:
    """One INSERT … ON CONFLICT DO NOTHING RETURNING id for the batch (PostgreSQL and SQLite
    both speak it): the ids of the runs this tick created, none for slots claimed before."""
    if not rows:
        return []
    table = Run._meta.db_table
    ops = connection.ops
    stamp = ops.adapt_datetimefield_value(timezone.now())
    columns = (
        "org_id, workflow_id, slot, scheduled_at, late, state, inputs, decision, asset, "
        "reference, outcome, created_at, updated_at"
    )
    placeholders = "(%s, %s, %s, %s, %s, %s, %s, '', '', %s, '', %s, %s)"
    values: list[Any] = []
    for workflow, slot, late in rows:
        values += [
            workflow.org_id,
            workflow.pk,
            slot.key,
            ops.adapt_datetimefield_value(slot.at),
            late,
            Run.State.CREATED,
            "{}",
            "{}",
            stamp,
            stamp,
        ]
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608 (table and columns are ours)
        + ", ".join([placeholders] * len(rows))
        + " ON CONFLICT (workflow_id, slot) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return [row[0] for row in cursor.fetchall()]


# The beat hands new runs to the workers in chunks: one message per chunk, which a worker fans
# out into one task per run (runs_dispatch_task). Sending 10,000 messages from the beat itself
# would keep it busy for a minute while the next slots wait.
DISPATCH_CHUNK = 200


def _enqueue(run_ids: list[int]) -> None:
    from apps.schedules.tasks import run_execute_task, runs_dispatch_task

    if len(run_ids) <= 2:
        for run_id in run_ids:
            run_execute_task.delay(run_id)
        return
    for start in range(0, len(run_ids), DISPATCH_CHUNK):
        runs_dispatch_task.delay(run_ids[start : start + DISPATCH_CHUNK])


def runs_dispatch(run_ids: list[int]) -> None:
    """One task per run (the worker side of `_enqueue`)."""
    from apps.schedules.tasks import run_execute_task

    for run_id in run_ids:
        run_execute_task.delay(run_id)


def _plan_key(workflow: Workflow) -> tuple[Any, ...]:
    return (
        workflow.schedule_kind,
        workflow.cron,
        workflow.timezone,
        workflow.interval_minutes,
        workflow.anchor,
        workflow.next_slot,
        workflow.next_slot_at,
        workflow.catch_up,
    )


def _claim_batch(now: datetime, batch: int, report: TickReport) -> int:
    with transaction.atomic(durable=True):
        due = list(
            Workflow.objects.select_for_update(skip_locked=True)
            .filter(status=Workflow.Status.ACTIVE, next_slot_at__lte=now)
            .order_by("next_slot_at", "id")[:batch]
        )
        if not due:
            return 0
        rows: list[tuple[Workflow, Slot, bool]] = []
        # Workflows on the same schedule at the same cursor have the same plan (many share
        # "0 9 * * *"): computed once per batch.
        plans: dict[tuple[Any, ...], _Plan] = {}
        cursors: dict[tuple[str, datetime], list[int]] = {}
        for workflow in due:
            try:
                key = _plan_key(workflow)
                planned = plans.get(key) or plans.setdefault(key, plan(workflow, now=now))
            except ValueError:
                # A schedule that no longer computes (a zone removed from the tz database):
                # paused with the reason rather than retried every tick.
                logger.exception("workflow %s: schedule does not compute", workflow.pk)
                workflow.status = Workflow.Status.PAUSED
                workflow.paused_reason = "Its schedule could not be computed; edit it to resume."
                workflow.save(update_fields=["status", "paused_reason", "updated_at"])
                continue
            rows += [(workflow, slot, late) for slot, late in planned.runs]
            report.late += sum(1 for _, late in planned.runs if late)
            if planned.skipped:
                report.skipped += planned.skipped
                audit_record(
                    action="schedules.slots_skipped",
                    org=workflow.org,
                    target=workflow,
                    detail={
                        "count": planned.skipped,
                        "first": planned.skipped_first.key if planned.skipped_first else "",
                        "last": planned.skipped_last.key if planned.skipped_last else "",
                        "rule": workflow.catch_up,
                    },
                )
            cursors.setdefault((planned.cursor.key, planned.cursor.at), []).append(workflow.pk)
        created: list[int] = []
        for start in range(0, len(rows), 500):
            created += _insert_runs(rows[start : start + 500])
        # One UPDATE per distinct new cursor (workflows on one schedule share it).
        for (cursor_key, cursor_at), ids in cursors.items():
            Workflow.objects.filter(pk__in=ids).update(next_slot=cursor_key, next_slot_at=cursor_at)
        if created:
            RunEvent.objects.bulk_create(
                RunEvent(run_id=run_id, state=Run.State.CREATED, text="Slot claimed; queued.")
                for run_id in created
            )
            transaction.on_commit(partial(_enqueue, created), robust=True)
        report.created += created
        return len(due)


def _sweep_stale(now: datetime, report: TickReport) -> None:
    """Runs whose task or worker was lost: queued ones are enqueued again, deciding ones go
    back to the queue (their decision's transaction never committed, so nothing happened),
    executing ones are executed again (the action's execute is idempotent per run)."""
    queued = list(
        Run.objects.filter(state=Run.State.CREATED, updated_at__lt=now - QUEUED_STALE).values_list(
            "pk", flat=True
        )[:500]
    )
    working = list(
        Run.objects.filter(
            state__in=(Run.State.RUNNING, Run.State.EXECUTING),
            updated_at__lt=now - WORKING_STALE,
        ).values_list("pk", "state")[:500]
    )
    again: list[int] = []
    with transaction.atomic(durable=True):
        if queued:
            Run.objects.filter(pk__in=queued, state=Run.State.CREATED).update(updated_at=now)
            again += queued
        for pk, state in working:
            target = Run.State.CREATED if state == Run.State.RUNNING else Run.State.EXECUTING
            moved = Run.objects.filter(
                pk=pk, state=state, updated_at__lt=now - WORKING_STALE
            ).update(state=target, updated_at=now)
            if moved:
                RunEvent.objects.create(
                    run_id=pk, state=target, text="Its worker was lost; carried on by another."
                )
                again.append(pk)
        if again:
            transaction.on_commit(partial(_enqueue, again), robust=True)
    report.requeued = len(again)


def schedules_tick(*, now: datetime | None = None, batch: int = BATCH) -> TickReport:
    """Claim every slot due by `now` (default: the current time). Safe to run from several
    processes at once and to kill at any point."""
    now = now or timezone.now()
    report = TickReport()
    while _claim_batch(now, batch, report) == batch:
        pass
    _sweep_stale(now, report)
    _sweep_ended_approvals(now, report)
    return report


def _sweep_ended_approvals(now: datetime, report: TickReport) -> None:
    """Runs waiting for an approval that was rejected, expired (even before approvals' own beat
    marks it so), cancelled or failed are settled as not run, with the reason."""
    from apps.schedules.runs import run_approval_ended, runs_with_ended_approvals

    for run_id in runs_with_ended_approvals(now=now):
        if run_approval_ended(run_id=run_id, now=now).state == Run.State.BLOCKED:
            report.approvals_ended += 1
