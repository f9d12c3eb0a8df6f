"""Browser-test infrastructure: the real portal served over ASGI, and real Chromium driving it.

A pytest plugin (registered in tests/conftest.py), so every test under tests/ can request these
fixtures by name; mark those tests ``@pytest.mark.browser``.

``portal_server``
    A :class:`PortalServer` (``.url``, ``.ws_url``, ``.log()``) serving
    ``kraken_portal.asgi:application`` with uvicorn in a subprocess: HTTP through Django,
    WebSockets through Channels, static files served (DEBUG=1). It talks to the pytest test
    database and the same Redis (REDIS_URL is passed through), so requesting it also gives the
    test ``transactional_db``: rows the test creates are committed and visible to the server,
    and are flushed after the test.

    One process serves every test that needs the same environment, so only the first test pays
    the start-up (about a second). Extra environment for the server (the Kraken sandbox's URLs,
    for instance) comes from the ``portal_server_env`` fixture: override it in your conftest or
    module, e.g.::

        @pytest.fixture
        def portal_server_env(sandbox):
            return {"KRAKEN_API_URL": sandbox.url, "KRAKEN_WS_URL": sandbox.ws_url}

    A different environment starts (and caches) another server process.

``page``
    A Playwright (sync API) page in a fresh browser context of Debian's Chromium
    (``/usr/bin/chromium``; the ``CHROMIUM_PATH`` environment variable overrides), headless, with
    ``base_url`` set to the server, so ``page.goto("/accounts/login/")`` works. Failures inside
    the page (uncaught JavaScript errors, CSP violations) are collected in
    ``page.console_errors`` (a list of strings) for tests to assert on.

``browser_context_args``
    Keyword arguments for ``browser.new_context`` (viewport, time zone, ...); override to change.

``sign_in_browser``
    ``sign_in_browser(page, user, device)`` goes through the real sign-in form (email, password,
    then the TOTP code computed from the device key) and waits for the landing page.

The Playwright sync API runs an asyncio loop in the test's thread, so Django's "you cannot call
this from an async context" guard would trip on ORM calls in the test body; the ``page`` fixture
sets DJANGO_ALLOW_ASYNC_UNSAFE for its test only. Playwright is started and stopped per test so
that no loop outlives a browser test and leaks into the next, non-browser test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection, connections

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 30.0


@dataclass
class PortalServer:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def log(self) -> str:
        """What the server printed (warnings, tracebacks): attach it to failure messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _database_url() -> str:
    """The pytest test database (e.g. test_portal_2), as a DATABASE_URL for the server."""
    settings = connection.settings_dict
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings.get("HOST") or "127.0.0.1"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(settings['NAME'], safe='')}"


def _start_server(extra_env: dict[str, str]) -> PortalServer:
    if connection.vendor != "postgresql":
        pytest.skip("Browser tests need the PostgreSQL test database (set DATABASE_URL).")
    workdir = Path(tempfile.mkdtemp(prefix="portal-server-"))
    port_file = workdir / "port"
    log_path = workdir / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
        "DATABASE_URL": _database_url(),
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.serve", str(port_file)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PortalServer(url="", process=process, log_path=log_path, env=extra_env)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The portal server exited at start-up:\n{server.log()}")
        if not server.url and port_file.exists():
            server.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        if server.url:
            try:
                # The URL is our own http://127.0.0.1 address, never user input.
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(
        f"The portal server did not answer within {SERVER_START_TIMEOUT} s:\n{server.log()}"
    )


@pytest.fixture(scope="session")
def portal_server_factory(
    django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Callable[[dict[str, str]], PortalServer]]:
    """Starts (once per distinct environment) and finally stops portal server processes."""
    servers: dict[tuple[tuple[str, str], ...], PortalServer] = {}

    def get(extra_env: dict[str, str]) -> PortalServer:
        key = tuple(sorted(extra_env.items()))
        server = servers.get(key)
        if server is None or server.process.poll() is not None:
            with django_db_blocker.unblock():
                server = servers[key] = _start_server(dict(extra_env))
        return server

    yield get
    # Before pytest-django drops the test database, which needs every connection gone.
    for server in servers.values():
        server.stop()
    if servers:
        with django_db_blocker.unblock():
            _wait_for_other_sessions_to_end()


def _wait_for_other_sessions_to_end(timeout: float = 5.0) -> None:
    """PostgreSQL ends a backend shortly after its client exits; DROP DATABASE must not race it.

    Sessions still open after the timeout are leftovers of this test run (the test database is
    ours alone) and are ended, so the next run does not find a database it cannot drop.
    """
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def portal_server_env() -> dict[str, str]:
    """Extra environment for the portal server; override to point it at the sandbox etc."""
    return {}


@pytest.fixture
def portal_server(
    transactional_db: Any,
    portal_server_factory: Callable[[dict[str, str]], PortalServer],
    portal_server_env: dict[str, str],
) -> PortalServer:
    return portal_server_factory(portal_server_env)


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1400, "height": 900}, "locale": "en-GB"}


@pytest.fixture
def page(
    portal_server: PortalServer,
    browser_context_args: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(base_url=portal_server.url, **browser_context_args)
        context.set_default_timeout(10_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.console_errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # ORM calls in the test body ran while Playwright's loop was marked running, which
            # gives them their own connection (asgiref context-local); close it here.
            connections.close_all()


@pytest.fixture
def sign_in_browser(portal_server: PortalServer) -> Callable[..., None]:
    """Sign in through the real form: email, password, then the TOTP code from `device`."""
    from tests.factories import PASSWORD

    def sign_in(page: Any, user: Any, device: Any = None, password: str = PASSWORD) -> None:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        if device is not None:
            from tests.accounts.otp import totp_code

            page.wait_for_url("**/accounts/two-factor/verify/**")
            page.get_by_label("Authentication code").fill(totp_code(device))
            page.get_by_role("button", name="Verify").click()
        page.wait_for_url(lambda url: "/accounts/" not in url)

    return sign_in
