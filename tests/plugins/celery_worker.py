"""A real Celery worker for tests whose behaviour depends on one.

`celery_worker_proc` starts `celery -A kraken_portal worker` as a subprocess (queues default,
orders and funding; prefork, one child) against the test database and REDIS_URL, waits until it
answers a ping, and stops it when the session ends. `celery_worker_sandbox` is the same worker
with its Kraken URLs aimed at the `sandbox` fixture, for tests whose tasks call Kraken. Tests
that use either must commit their data (`@pytest.mark.django_db(transaction=True)`), since the
worker has its own connection.

Every run talks to the broker under its own key prefix (`CELERY_BROKER_KEY_PREFIX`, see
settings): its queues are new and empty, and a worker left behind by a killed run, which still
listens on the same Redis database, cannot take this run's tasks or answer its pings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
QUEUES = "default,orders,funding"
# This run's broker prefix (a test process imports this module once per run).
BROKER_PREFIX = f"pytest-{uuid.uuid4().hex[:12]}:"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class CeleryWorker:
    process: subprocess.Popen[bytes]
    hostname: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _database_url(settings: dict[str, Any], vendor: str) -> str:
    if vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
    return f"postgres://{auth}{host}/{quote(settings['NAME'], safe='')}"


def _wait_for_ping(app: Any, worker: CeleryWorker) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(
                f"The Celery worker exited with {worker.process.returncode}:\n{worker.log()}"
            )
        replies = app.control.ping(destination=[worker.hostname], timeout=0.5)
        if any(worker.hostname in reply for reply in replies):
            return
    pytest.fail(
        f"The Celery worker did not answer a ping in {START_TIMEOUT:.0f} s:\n{worker.log()}"
    )


def _stop(worker: CeleryWorker) -> None:
    if worker.process.poll() is not None:
        return
    # SIGTERM is Celery's warm shutdown: the current task finishes, then the worker exits.
    worker.process.send_signal(signal.SIGTERM)
    try:
        worker.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=STOP_TIMEOUT)


def _start(env: dict[str, str]) -> tuple[CeleryWorker, Any]:
    from kraken_portal.celery import app

    # Messages left over from an earlier, interrupted run must not reach this worker.
    app.control.purge()
    hostname = f"pytest-{uuid.uuid4().hex[:8]}@localhost"
    log_file = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False)  # noqa: SIM115
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "kraken_portal",
        "worker",
        "--queues",
        QUEUES,
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "--hostname",
        hostname,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = CeleryWorker(process=process, hostname=hostname, log_path=Path(log_file.name))
    try:
        _wait_for_ping(app, worker)
    except BaseException:
        _stop(worker)
        log_file.close()
        worker.log_path.unlink(missing_ok=True)
        raise
    return worker, log_file


class _WorkerPool:
    """At most one worker per session; restarted once if a test needs it aimed at the sandbox.

    A worker points at Kraken through its environment (KRAKEN_* URLs), fixed when it starts.
    Plain worker tests take whichever worker runs; a test that also needs the sandbox asks
    for `celery_worker_sandbox`, which restarts the worker aimed at the sandbox if it is not
    already, so no plain worker test has to start the sandbox.
    """

    def __init__(self, base_env: dict[str, str]) -> None:
        self.base_env = base_env
        self.worker: CeleryWorker | None = None
        self.kraken: dict[str, str] = {}
        self._log_file: Any = None

    def get(self, kraken: dict[str, str] | None = None) -> CeleryWorker:
        alive = self.worker is not None and self.worker.process.poll() is None
        if alive and (kraken is None or kraken == self.kraken):
            assert self.worker is not None
            return self.worker
        self.close()
        self.kraken = dict(kraken or {})
        self.worker, self._log_file = _start({**self.base_env, **self.kraken})
        return self.worker

    def close(self) -> None:
        if self.worker is None:
            return
        _stop(self.worker)
        self._log_file.close()
        self.worker.log_path.unlink(missing_ok=True)
        self.worker = None
        self.kraken = {}


def broker_prefix_use(prefix: str) -> None:
    """Send this process's tasks, pings and purges under `prefix` (new connections only)."""
    from kraken_portal.celery import app

    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "global_keyprefix": prefix,
    }
    # Celery keeps its connection and producer pools once built; drop them so the next
    # message goes out with the prefix.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session", autouse=True)
def _celery_broker_prefix() -> Iterator[str]:
    """The whole session enqueues under this run's prefix; its keys are deleted at the end."""
    from django.conf import settings

    from apps.core.redis_clients import redis_client

    broker_prefix_use(BROKER_PREFIX)
    # Every process the tests start (the portal server, schedule ticks, streams, workers)
    # inherits the prefix: a task the portal server enqueues must reach this run's worker.
    previous = os.environ.get("CELERY_BROKER_KEY_PREFIX")
    os.environ["CELERY_BROKER_KEY_PREFIX"] = BROKER_PREFIX
    yield BROKER_PREFIX
    if previous is None:
        os.environ.pop("CELERY_BROKER_KEY_PREFIX", None)
    else:
        os.environ["CELERY_BROKER_KEY_PREFIX"] = previous
    with contextlib.suppress(redis.RedisError):
        client = redis_client(settings.CELERY_BROKER_URL)
        keys = list(client.scan_iter(match=BROKER_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="session")
def _celery_worker_pool(django_db_setup: Any, django_db_blocker: Any) -> Iterator[_WorkerPool]:
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("a worker process cannot open an in-memory SQLite test database")
    with django_db_blocker.unblock():
        database_url = _database_url(connection.settings_dict, connection.vendor)
    pool = _WorkerPool(
        {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "CELERY_BROKER_KEY_PREFIX": BROKER_PREFIX,
            "PYTHONUNBUFFERED": "1",
        }
    )
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def celery_worker_proc(_celery_worker_pool: _WorkerPool) -> CeleryWorker:
    """The session's worker, started on first use; its Kraken URLs are whatever it has."""
    return _celery_worker_pool.get()


def sandbox_environment(sandbox: Any) -> dict[str, str]:
    """The environment that points a process's Kraken client at `sandbox`."""
    return {
        "KRAKEN_API_URL": sandbox.url,
        "KRAKEN_WS_URL": sandbox.ws_url,
        "KRAKEN_WS_AUTH_URL": sandbox.ws_auth_url,
    }


@pytest.fixture
def celery_worker_sandbox(_celery_worker_pool: _WorkerPool, sandbox: Any) -> CeleryWorker:
    """The session's worker with KRAKEN_API_URL / KRAKEN_WS_URL / KRAKEN_WS_AUTH_URL aimed at
    the `sandbox` fixture (restarted once if it was running without them)."""
    return _celery_worker_pool.get(sandbox_environment(sandbox))
