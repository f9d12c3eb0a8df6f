"""The beat's claim: once per slot, whatever races, restarts or outages happen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.audit.models import AuditRecord
from apps.schedules.models import Run, Workflow
from apps.schedules.ticks import schedules_tick
from tests.plugins.celery_worker import REPO, _database_url
from tests.schedules.conftest import rewind

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 29, 3, 0, 30, tzinfo=UTC)  # just after 04:00 BST, the day clocks jump


def slots_of(workflow: Workflow) -> list[str]:
    return list(
        Run.objects.filter(workflow=workflow)
        .order_by("scheduled_at", "slot")
        .values_list("slot", flat=True)
    )


def test_a_due_slot_becomes_one_run_and_the_cursor_moves_on(make_workflow) -> None:
    workflow = rewind(make_workflow(), to=NOW - timedelta(minutes=2))
    report = schedules_tick(now=NOW)
    assert slots_of(workflow) == ["2026-03-29T04:00 Europe/London"]
    assert len(report.created) == 1
    workflow.refresh_from_db()
    assert workflow.next_slot == "2026-03-29T05:00 Europe/London"
    assert schedules_tick(now=NOW).created == []
    assert Run.objects.count() == 1


def test_the_slots_of_the_clocks_forward_night_each_run_once(make_workflow) -> None:
    workflow = rewind(
        make_workflow(cron="*/30 * * * *", catch_up="run_once"),
        to=datetime(2026, 3, 29, 0, 50, tzinfo=UTC),
    )
    # Tick every 20 s through the jump (01:00 UTC is 02:00 BST).
    moment = datetime(2026, 3, 29, 0, 50, tzinfo=UTC)
    while moment < datetime(2026, 3, 29, 1, 40, tzinfo=UTC):
        schedules_tick(now=moment)
        moment += timedelta(seconds=20)
    assert slots_of(workflow) == [
        "2026-03-29T01:00 Europe/London",
        "2026-03-29T01:30 Europe/London",
        "2026-03-29T02:00 Europe/London",
        "2026-03-29T02:30 Europe/London",
    ]
    assert not Run.objects.filter(late=True).exists()


def test_the_doubled_hour_of_the_clocks_back_night_runs_once(make_workflow) -> None:
    workflow = rewind(
        make_workflow(cron="30 1 * * *", timezone="America/New_York"),
        to=datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
    )
    moment = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    while moment < datetime(2026, 11, 1, 8, 0, tzinfo=UTC):
        schedules_tick(now=moment)
        moment += timedelta(seconds=30)
    assert slots_of(workflow) == ["2026-11-01T01:30 America/New_York"]
    run = Run.objects.get(workflow=workflow)
    assert run.scheduled_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # the EDT occurrence


def test_skip_leaves_out_slots_missed_while_down_and_audits_them(make_workflow) -> None:
    workflow = rewind(make_workflow(catch_up="skip"), to=NOW - timedelta(hours=5))
    report = schedules_tick(now=NOW)
    # Due: 23:00 GMT, 00:00 GMT, 01:00 (does not exist: 02:00 BST), 02:00, 03:00 and 04:00
    # BST; all but 04:00 (30 s ago, on time) were missed.
    assert slots_of(workflow) == ["2026-03-29T04:00 Europe/London"]
    assert report.skipped == 5
    record = AuditRecord.objects.get(action="schedules.slots_skipped")
    assert record.detail["count"] == 5
    assert record.detail["first"] == "2026-03-28T23:00 Europe/London"
    assert record.detail["last"] == "2026-03-29T03:00 Europe/London"
    assert record.detail["rule"] == "skip"


def test_run_once_runs_the_latest_missed_slot_once_marked_late(make_workflow) -> None:
    workflow = rewind(make_workflow(catch_up="run_once"), to=NOW - timedelta(hours=5))
    report = schedules_tick(now=NOW)
    runs = list(Run.objects.filter(workflow=workflow).order_by("scheduled_at"))
    assert [(r.slot, r.late) for r in runs] == [
        ("2026-03-29T03:00 Europe/London", True),
        ("2026-03-29T04:00 Europe/London", False),
    ]
    assert report.skipped == 4
    assert schedules_tick(now=NOW + timedelta(seconds=20)).created == []


def test_run_once_after_an_outage_with_no_slot_now_runs_one_late(make_workflow) -> None:
    workflow = rewind(make_workflow(catch_up="run_once"), to=NOW - timedelta(days=2))
    schedules_tick(now=NOW + timedelta(minutes=20))
    assert list(Run.objects.filter(workflow=workflow).values_list("slot", "late")) == [
        ("2026-03-29T04:00 Europe/London", True)
    ]


def test_a_paused_workflow_claims_nothing(make_workflow, treasurer) -> None:
    from apps.schedules.services import workflow_pause

    workflow = rewind(make_workflow(), to=NOW - timedelta(minutes=2))
    workflow_pause(membership=treasurer, workflow=workflow)
    assert schedules_tick(now=NOW).created == []


def _tick_in_process(now: datetime, *, batch: int = 1000) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict, connection.vendor),
    }
    code = (
        "import django, sys; django.setup();"
        "from datetime import datetime;"
        "from apps.schedules.ticks import schedules_tick;"
        f"r = schedules_tick(now=datetime.fromisoformat({now.isoformat()!r}), batch={batch});"
        "print(len(r.created))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _many(make_workflow, count: int, *, to: datetime) -> list[int]:
    first = make_workflow(cron="* * * * *")
    ids = [first.pk]
    fields = {
        f: getattr(first, f)
        for f in (
            "org_id",
            "account_id",
            "schedule_kind",
            "cron",
            "timezone",
            "action",
            "params",
            "cap_asset",
            "per_run_cap",
            "per_day_cap",
            "approval_mode",
            "catch_up",
            "created_by_id",
        )
    }
    clones = Workflow.objects.bulk_create(
        Workflow(name=f"w{i}", **fields) for i in range(count - 1)
    )
    ids += [w.pk for w in clones]
    for workflow in Workflow.objects.filter(pk__in=ids):
        rewind(workflow, to=to)
    return ids


def test_two_beat_processes_racing_create_each_run_once(make_workflow) -> None:
    ids = _many(make_workflow, 300, to=NOW - timedelta(minutes=2))  # 02:59 and 03:00 UTC due
    beats = [_tick_in_process(NOW, batch=50) for _ in range(2)]
    outputs = [beat.communicate(timeout=120) for beat in beats]
    assert [beat.returncode for beat in beats] == [0, 0], [o[1].decode()[-2000:] for o in outputs]
    created = [int(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert Run.objects.filter(workflow_id__in=ids).count() == 600
    assert sum(created) == 600  # every run was created by exactly one of them
    assert Run.objects.values("workflow_id", "slot").distinct().count() == 600


def test_ticks_racing_from_a_stale_cursor_claim_nothing_again(make_workflow) -> None:
    """Even when both beats believe the slots are still free (their cursor read before the
    claim), the unique constraint keeps one run per slot and neither enqueues a second."""
    ids = _many(make_workflow, 40, to=NOW - timedelta(minutes=2))
    first = schedules_tick(now=NOW)
    assert len(first.created) == 80
    for workflow in Workflow.objects.filter(pk__in=ids):
        rewind(workflow, to=NOW - timedelta(minutes=2))  # the stale view
    created: list[int] = []
    start = threading.Barrier(2)

    def beat() -> None:
        try:
            start.wait()
            created.extend(schedules_tick(now=NOW).created)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created == []
    assert Run.objects.count() == 80


def test_a_beat_killed_mid_tick_leaves_no_duplicate_and_no_gap(make_workflow) -> None:
    ids = _many(make_workflow, 400, to=NOW - timedelta(minutes=2))
    beat = _tick_in_process(NOW, batch=5)
    # Let it claim some batches, then kill it without warning.
    deadline = time.monotonic() + 60
    while Run.objects.count() < 50 and time.monotonic() < deadline and beat.poll() is None:
        time.sleep(0.02)
    beat.send_signal(signal.SIGKILL)
    beat.wait(timeout=30)
    partial = Run.objects.count()
    assert partial < 800, "the beat finished before it was killed; the test proves nothing"
    again = schedules_tick(now=NOW)
    assert partial + len(again.created) == 800
    assert (
        Run.objects.filter(workflow_id__in=ids).values("workflow_id", "slot").distinct().count()
        == 800
    )
