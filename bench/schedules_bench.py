"""Workflow scheduler: 10,000 workflows due in the same minute, claimed by two beat processes.

In a scratch database beside DATABASE_URL's (PostgreSQL only: the claim's SKIP LOCKED and the
unique constraint are what is measured), the script creates `--workflows` active workflows
whose next slot is the same instant (the coming minute), on a mix of schedules: four cron
expressions in five time zones (every minute, at this minute of every hour, twice an hour,
daily at this local hour). Two beat processes (`--beats`) wait for that instant and then tick
as the Celery beat would, but back to back (a tick ends when nothing is due), so the figures
are the claim's own cost rather than the beat period's (15 s).

Printed: how many runs each beat created, duplicates (runs minus distinct workflow and slot:
the goal is 0, and the unique constraint makes anything else impossible), slots left without
a run (goal 0), and the time from the slot's instant to the run's row, p50/p99/max. The runs'
tasks are enqueued to a queue of their own (`schedules-bench`), emptied afterwards, so no
worker executes them: this measures the claim, not the actions.

    .venv/bin/python bench/schedules_bench.py [--workflows 10000] [--beats 2]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_QUEUE = "schedules-bench"
ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--beats", type=int, default=2)
    parser.add_argument("--beat", help=argparse.SUPPRESS)  # internal: run as one beat
    return parser.parse_args(sys.argv[1:] if "--beat" in sys.argv else _known())


def _known() -> list[str]:
    # make bench passes its own arguments to every script: keep only ours.
    ours = {"--workflows", "--beats"}
    args, keep = sys.argv[1:], []
    for i, arg in enumerate(args):
        if arg in ours and i + 1 < len(args):
            keep += [arg, args[i + 1]]
    return keep


def _django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")
    import django

    django.setup()
    from kraken_portal.celery import app

    # The runs' tasks go to a queue nobody consumes, emptied at the end.
    app.conf.task_routes = {"apps.schedules.tasks.*": {"queue": BENCH_QUEUE}}


def beat_main(database_url: str, slot_at: str) -> None:
    """One beat process: wait for the slot, then tick until nothing is due."""
    _django(database_url)
    from apps.schedules.ticks import schedules_tick

    due = datetime.fromisoformat(slot_at)
    while datetime.now(tz=UTC) < due:
        time.sleep(0.005)
    created = 0
    ticks = 0
    started = time.perf_counter()
    while True:
        report = schedules_tick()
        ticks += 1
        created += len(report.created)
        if not report.created:
            break
    print(f"{created} {ticks} {time.perf_counter() - started:.3f}", flush=True)


def prepare(count: int) -> datetime:
    """Migrate, then create `count` workflows whose next slot is the coming minute."""
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.orgs.models import KrakenAccount, Membership, Organization
    from apps.orgs.permissions import Role
    from apps.schedules.models import Workflow
    from apps.schedules.slots import next_slots

    call_command("migrate", "--no-input", verbosity=0)
    org = Organization.objects.create(name="Bench Fund", slug="schedules-bench")
    user = User.objects.create_user(email="bench@schedules.test", password="x" * 20)
    Membership.objects.create(org=org, user=user, role=Role.TREASURER)
    account = KrakenAccount.objects.create(
        org=org, label="Master", kind=KrakenAccount.Kind.MASTER, verification_tier="pro"
    )
    # At least 30 s ahead: creating the rows takes a few seconds.
    slot = (datetime.now(tz=UTC) + timedelta(seconds=90)).replace(second=0, microsecond=0)
    schedules = []
    for zone in ZONES:
        local = slot.astimezone(__import__("zoneinfo").ZoneInfo(zone))
        for cron in (
            "* * * * *",
            f"{local.minute} * * * *",
            f"{local.minute},{(local.minute + 30) % 60} * * * *",
            f"{local.minute} {local.hour} * * *",
        ):
            first = next_slots(kind="cron", cron=cron, zone=zone, after=slot - timedelta(seconds=1))
            assert first[0].at == slot, (cron, zone, first[0])
            schedules.append((cron, zone, first[0]))
    rows = []
    for i in range(count):
        cron, zone, due = schedules[i % len(schedules)]
        rows.append(
            Workflow(
                org=org,
                name=f"bench {i}",
                account=account,
                schedule_kind="cron",
                cron=cron,
                timezone=zone,
                action="bench.none",
                params={"asset": "BTC"},
                cap_asset="BTC",
                per_run_cap=1,
                per_day_cap=10,
                approval_mode="once",
                catch_up="skip",
                next_slot=due.key,
                next_slot_at=due.at,
                created_by=user,
            )
        )
    Workflow.objects.bulk_create(rows, batch_size=2000)
    return slot


def measure(slot: datetime, count: int, beats: list[tuple[int, int, float]]) -> None:
    from django.db import connection

    from apps.schedules.models import Run

    with connection.cursor() as cursor:
        lag = "extract(epoch FROM created_at - scheduled_at)"
        # The table name is our own model's.
        query = (
            "SELECT count(*), count(DISTINCT (workflow_id, slot)),"  # noqa: S608
            f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {lag}),"
            f" percentile_cont(0.99) WITHIN GROUP (ORDER BY {lag}), max({lag})"
            f" FROM {Run._meta.db_table} WHERE scheduled_at = %s"
        )
        cursor.execute(query, [slot])
        runs, distinct, p50, p99, worst = cursor.fetchone()
    print(f"workflows due at {slot:%Y-%m-%d %H:%M} UTC: {count} (4 cron expressions x 5 zones)")
    for i, (created, ticks, seconds) in enumerate(beats, 1):
        print(f"  beat {i}: created {created} runs in {ticks} ticks, {seconds:.2f} s")
    print(f"runs: {runs}   duplicates: {runs - distinct}   slots without a run: {count - distinct}")
    print(
        "slot to run created: "
        f"p50 {float(p50) * 1000:.0f} ms   p99 {float(p99) * 1000:.0f} ms   "
        f"max {float(worst) * 1000:.0f} ms"
    )


@contextlib.contextmanager
def scratch_database(database_url: str) -> Iterator[str]:
    """A fresh database beside DATABASE_URL's (`<name>_schedules_bench`), dropped afterwards."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    name = unquote(parts.path.lstrip("/")) + "_schedules_bench"
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name)))
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(drop)


def main() -> int:
    args = parse_args()
    os.environ.setdefault(
        "PORTAL_KEYRING",
        "bench:" + base64.b64encode(hashlib.sha256(b"schedules-bench").digest()).decode(),
    )
    if args.beat:
        database_url, slot_at = args.beat.split("|", 1)
        beat_main(database_url, slot_at)
        return 0
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        print("skipped: set DATABASE_URL to a PostgreSQL database (the claim is measured there)")
        return 0
    with scratch_database(database_url) as bench_url:
        _django(bench_url)
        started = time.perf_counter()
        slot = prepare(args.workflows)
        print(f"prepared {args.workflows} workflows in {time.perf_counter() - started:.1f} s")
        processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--beat", f"{bench_url}|{slot.isoformat()}"],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.beats)
        ]
        beats = []
        for process in processes:
            out, _ = process.communicate(timeout=600)
            created, ticks, seconds = out.strip().splitlines()[-1].split()
            beats.append((int(created), int(ticks), float(seconds)))
        measure(slot, args.workflows, beats)
        from django.db import connections

        connections.close_all()
        from kraken_portal.celery import app

        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(BENCH_QUEUE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
