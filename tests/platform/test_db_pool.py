"""PostgreSQL connections come from a bounded pool in every process, however many requests.

Under ASGI each request runs in a thread of its own; with persistent connections each of those
threads opened a connection of its own and none was returned, until PostgreSQL refused new
clients ("too many clients already") and a third of the pages failed under 50 users.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.test import Client, override_settings

from apps.orgs.models import Membership
from kraken_portal.settings.base import database_from_url

REPO = Path(__file__).resolve().parents[2]


def test_a_postgres_url_gets_a_pool_and_no_persistent_connections() -> None:
    entry: Any = database_from_url(
        "postgres://portal:secret@db.internal:5432/portal?sslmode=require"
    )
    assert entry["CONN_MAX_AGE"] == 0
    assert entry["OPTIONS"]["sslmode"] == "require"
    assert entry["OPTIONS"]["pool"] == {
        "min_size": settings.DATABASE_POOL_MIN_SIZE,
        "max_size": settings.DATABASE_POOL_MAX_SIZE,
        "timeout": settings.DATABASE_POOL_TIMEOUT,
    }


def test_a_sqlite_url_gets_no_pool() -> None:
    entry: Any = database_from_url("sqlite:///tmp/portal.sqlite3")
    assert "OPTIONS" not in entry


def _settings_in_subprocess(env: dict[str, str]) -> list[str]:
    code = (
        "from kraken_portal.settings import base;"
        "d = base.DATABASES['default'];"
        "print(d['ENGINE'], d['CONN_MAX_AGE'] if 'CONN_MAX_AGE' in d else '-',"
        " d.get('OPTIONS', {}).get('pool'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().split(" ", 2)


def test_the_pool_is_sized_from_the_environment_and_can_be_turned_off() -> None:
    url = {"DATABASE_URL": "postgres://portal@127.0.0.1:5432/portal"}
    sized = _settings_in_subprocess(
        {**url, "DATABASE_POOL_MAX_SIZE": "4", "DATABASE_POOL_MIN_SIZE": "2"}
    )
    assert sized == [
        "django.db.backends.postgresql",
        "0",
        "{'min_size': 2, 'max_size': 4, 'timeout': 30.0}",
    ]
    off = _settings_in_subprocess({**url, "DATABASE_POOL_MAX_SIZE": "0"})
    assert off == ["django.db.backends.postgresql", "0", "None"]


def test_make_run_without_a_database_url_keeps_sqlite(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "", "PORTAL_VAR_DIR": str(tmp_path)}
    engine, _, pool = _settings_in_subprocess(env)
    assert (engine, pool) == ("django.db.backends.sqlite3", "None")


def _backend_sockets(port: int) -> int:
    """TCP connections this process holds open to PostgreSQL."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def _get(app: ASGIHandler, path: str, cookie: str = "") -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF="tests.platform.pool_urls")
def test_more_concurrent_requests_than_the_pool_holds_all_succeed_on_bounded_connections() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("The pool is PostgreSQL's (set DATABASE_URL).")
    max_size = settings.DATABASE_POOL_MAX_SIZE
    requests = max_size + 15
    port = int(connection.settings_dict["PORT"] or 5432)
    connection.close()  # the test's own connection goes back to the pool too
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _backend_sockets(port))
            time.sleep(0.01)

    async def burst() -> list[int]:
        app = ASGIHandler()
        return await asyncio.gather(*(_get(app, "/hold/") for _ in range(requests)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        statuses = asyncio.run(burst())
    finally:
        done.set()
        watcher.join()
    assert statuses == [200] * requests
    # Every request ran in a thread of its own; they shared at most max_size connections.
    assert 0 < peak <= max_size


@pytest.mark.django_db(transaction=True)
def test_error_pages_under_asgi_give_their_connections_back(outsider: Membership, org: Any) -> None:
    """A 404 (an outsider on an organization's page) renders base.html, whose organization
    switcher reads the database: Django renders error pages in a thread of the event loop's
    executor, where nothing returned that connection to the pool."""
    if connection.vendor != "postgresql":
        pytest.skip("The pool is PostgreSQL's (set DATABASE_URL).")
    client = Client()
    client.force_login(outsider.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    requests = settings.DATABASE_POOL_MAX_SIZE + 5
    connection.close()

    async def burst() -> list[int]:
        app = ASGIHandler()
        return await asyncio.gather(
            *(_get(app, f"/o/{org.slug}/vault/", cookie) for _ in range(requests))
        )

    assert asyncio.run(burst()) == [404] * requests
    pool: Any = connection.pool
    deadline = time.monotonic() + 3
    while (stats := pool.get_stats())["pool_available"] < stats["pool_size"]:
        assert time.monotonic() < deadline, f"connections kept out of the pool: {stats}"
        time.sleep(0.05)
