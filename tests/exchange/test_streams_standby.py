"""`manage.py streams` as deployed: two processes, one active by the Redis lease; when the
active one is killed (SIGKILL: no goodbye, its lease just expires) the standby takes over and
nothing the account did meanwhile is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from apps.exchange.streams.process import PROCESS_KEY, STATUS_KEY
from apps.orgs.models import Membership
from tests.exchange.conftest import Reader, eventually, make_reader
from tests.exchange.test_streams import closed_order, market_buy, nothing_missing
from tests.plugins.celery_worker import _database_url, sandbox_environment
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
LEASE_TTL = 2.0


class StreamsCommand:
    """One `manage.py streams` subprocess, its log in a file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="streams-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "streams",
                "--lease-ttl",
                str(LEASE_TTL),
                "--poll",
                "0.5",
                "--tick",
                "0.5",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture
def commands(exchange_sandbox: Any) -> Iterator[Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict, connection.vendor),
        "REDIS_URL": settings.REDIS_URL,
        "PORTAL_KEYRING": f"k1:{KEK_1}",
        "PYTHONUNBUFFERED": "1",
        **sandbox_environment(exchange_sandbox),
    }
    started: list[StreamsCommand] = []

    def start() -> StreamsCommand:
        command = StreamsCommand(env)
        started.append(command)
        return command

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(STATUS_KEY)
    try:
        yield start
    finally:
        for command in started:
            command.stop()
        client.delete(STATUS_KEY)
        client.close()


def status() -> dict[str, Any]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.hgetall(STATUS_KEY)
        own = {key.decode(): client.hgetall(key) for key in client.scan_iter(f"{PROCESS_KEY}:*")}
    finally:
        client.close()
    found: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    found["accounts"] = json.loads(found.get("accounts") or "{}")
    found["pids"] = {
        key.rsplit(":", 1)[1]: int(value[b"pid"]) for key, value in own.items() if b"pid" in value
    }
    return found


def subscribed_by(account_id: int, *, not_owner: str = "") -> dict[str, Any] | None:
    """The status once an active process other than `not_owner` has `account_id` subscribed."""
    found = status()
    account = found["accounts"].get(str(account_id)) or {}
    fresh = found.get("owner") and found.get("owner") != not_owner
    return found if fresh and account.get("state") == "subscribed" else None


def test_a_standby_takes_over_when_the_active_process_is_killed(
    owner: Membership, commands: Any, exchange_sandbox: Any
) -> None:
    reader: Reader = make_reader(exchange_sandbox, owner)
    first, second = commands(), commands()
    active = eventually(lambda: subscribed_by(reader.account.pk), timeout=60)
    active_pid = active["pids"][active["owner"]]
    processes = {first.process.pid: first, second.process.pid: second}
    assert set(processes) <= set(active["pids"].values())  # both run: one active, one standby
    txid = market_buy(reader, exchange_sandbox)
    eventually(lambda: closed_order(reader, txid))

    os.killpg(active_pid, signal.SIGKILL)  # no goodbye: the lease must expire
    processes[active_pid].process.wait(timeout=10)
    # The account trades on while nobody holds its socket.
    during = market_buy(reader, exchange_sandbox, volume="0.02")

    taken = eventually(
        lambda: subscribed_by(reader.account.pk, not_owner=active["owner"]), timeout=60
    )
    survivor = next(c for pid, c in processes.items() if pid != active_pid)
    assert taken["pids"][taken["owner"]] == survivor.process.pid
    # What happened while the account was unheld is recorded, and so is what follows.
    eventually(lambda: closed_order(reader, during))
    after = market_buy(reader, exchange_sandbox, volume="0.03")
    eventually(lambda: closed_order(reader, after))
    nothing_missing(reader, exchange_sandbox)
