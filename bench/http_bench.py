"""Signed-in users against the real server: page requests/s, p50/p99 latency and errors.

The script prepares, in a scratch database on the PostgreSQL server of DATABASE_URL (it refuses
SQLite: the figures are about PostgreSQL's connection limit), one signed-in, 2FA-verified member
per virtual user, in organizations of 20 (`--org-size`) that require 2FA, with two API keys each
where the role may hold them (so the keys and audit pages have rows), and market data published
by the real feeder from a local Kraken sandbox. It then starts the portal exactly as deployed
(`python -m kraken_portal.serve`, debug off) with `bench/http_bench_settings.py`,
which only adds a minimal view (`/bench/minimal/`) as the baseline.

Phases:
- one user alone, each page in turn (and the sign-in page, signed out): per-page p50/p99;
- N users at once (default 50 and 200), each on its own keep-alive connection, cycling through
  the overview, markets, pair, keys and audit pages; then the same users on the minimal view.

Each phase is bounded in time and in requests; loopback only. A request counts as an error when
it does not answer 200 within 30 s (a 500, a redirect to sign-in, a reset connection). The
busiest moment's connections to the scratch database (pg_stat_activity) and the server's
CPU time per request (which, unlike latency, the other work on a shared machine hardly changes)
are printed too.

    .venv/bin/python bench/http_bench.py [--users 50,200] [--seconds 10] [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psutil

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SETTINGS = "bench.http_bench_settings"
ORG_SLUG = "http-bench-{n}"
REQUEST_TIMEOUT = 30.0
PAGES = {
    "overview": "/o/{org}/",
    "markets": "/o/{org}/markets/",
    "pair": "/o/{org}/markets/BTC-USD/",
    "keys": "/o/{org}/vault/",
    "audit": "/o/{org}/audit/",
}
BASELINE = "/bench/minimal/"
SIGN_IN = "/accounts/login/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- preparation (in this process, through the portal's own code) ---------------------------


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def prepare_database(users: int, org_size: int) -> list[tuple[str, str]]:
    """Migrate, then make `users` signed-in, 2FA-verified members, `org_size` to an organization;
    returns each one's session key and organization slug."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core.management import call_command
    from django.db import connections

    from apps.accounts.middleware import LAST_SEEN_KEY
    from apps.accounts.models import EncryptedTOTPDevice, User
    from apps.accounts.services import totp_device_create
    from apps.orgs.models import KrakenAccount, Membership, Organization
    from apps.orgs.permissions import Role
    from apps.vault.services import credential_create

    call_command("migrate", "--no-input", verbosity=0)
    roles = [Role.OWNER, Role.ADMIN, Role.TRADER, Role.TREASURER]
    store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = []
    for i in range(users):
        slug = ORG_SLUG.format(n=i // org_size)
        org, _ = Organization.objects.get_or_create(
            slug=slug,
            defaults={"name": f"Bench Capital {slug}", "country": "GB", "require_2fa": True},
        )
        email = f"bench-{i}@http-bench.test"
        user = User.objects.filter(email=email).first()
        if user is None:
            # No password: the benchmark signs its users in by writing their sessions, so
            # hashing a password 200 times (seconds each under load) is not measured.
            user = User.objects.create_user(email=email, password=None)
        membership, created = Membership.objects.get_or_create(
            org=org, user=user, defaults={"role": roles[i % len(roles)]}
        )
        if created:
            # Every key sits on one of the organization's Kraken accounts: its master here.
            account, _ = KrakenAccount.objects.get_or_create(
                org=org,
                kind=KrakenAccount.Kind.MASTER,
                archived_at__isnull=True,
                defaults={"label": "Bench", "verification_tier": "starter"},
            )
            for use in ("trading", "funding"):
                api_key, secret = _demo_key(f"{email}:{use}")
                with contextlib.suppress(Exception):  # a role that may not hold this use
                    credential_create(
                        membership=membership,
                        label=f"Bench {use} key",
                        api_key=api_key,
                        secret=secret,
                        otp=None,
                        account=account,
                        use=use,
                        probe=False,
                    )
        # The portal's own sealed device: django-otp's TOTPDevice keeps its key in plaintext
        # (and the accounts.E001 check refuses any such row).
        device = EncryptedTOTPDevice.objects.filter(
            user=user, name="default", confirmed=True
        ).first() or totp_device_create(user=user, name="default", confirmed=True)
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "apps.accounts.backends.EmailBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session["otp_device_id"] = device.persistent_id
        session[LAST_SEEN_KEY] = time.time()
        session.create()
        keys.append((session.session_key, slug))
    # This process's connections (its pool's, too) would otherwise stay open through the
    # measurement and be counted with the server's.
    connections.close_all()
    for connection in connections.all():
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()
    return keys


def _demo_key(label: str) -> tuple[str, str]:
    seed = hashlib.sha512(f"http-bench:{label}".encode()).digest()
    return base64.b64encode(seed[:42]).decode(), base64.b64encode(
        hashlib.sha512(seed).digest()
    ).decode()


async def publish_market_data(sandbox_url: str, ws_url: str) -> int:
    """Run the real feeder against the sandbox until every pair's state is in Redis."""
    from channels.layers import get_channel_layer
    from django.conf import settings
    from redis.asyncio import Redis

    from apps.market.feeder.client import Feeder

    redis = Redis.from_url(settings.REDIS_URL)
    feeder = Feeder(ws_url=ws_url, api_url=sandbox_url, redis=redis, layer=get_channel_layer())
    task = asyncio.create_task(feeder.run_forever())
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            states = list(feeder.states.values())
            if states and all(s.book.ready and s.ticker for s in states):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.6)  # the trailing flushes store the newest state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
    return len(feeder.states)


# -- load (a small HTTP/1.1 keep-alive client, cheap enough not to be the bottleneck) ---------


class HttpConnection:
    cookie_name = "sessionid"

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        cookie = f"Cookie: {self.cookie_name}={self.cookie}\r\n" if self.cookie else ""
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{cookie}\r\n".encode()
        )
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0
    cpu: float = 0.0  # the server's CPU seconds during the phase
    peak_db_connections: int = 0

    def row(self, name: str, users: int) -> dict[str, str]:
        lat = sorted(self.latencies)
        pct = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0] if lat else 0.0] * 99
        done = len(lat) + sum(self.errors.values())
        return {
            "target": name,
            "users": str(users),
            "requests": str(done),
            "req/s": f"{len(lat) / max(self.ended - self.started, 1e-9):,.0f}",
            "p50 ms": f"{pct[49] * 1000:.1f}",
            "p99 ms": f"{pct[98] * 1000:.1f}",
            "server CPU ms/req": f"{self.cpu * 1000 / max(done, 1):.1f}",
            "errors": str(sum(self.errors.values())),
            "peak DB conns": str(self.peak_db_connections) if self.peak_db_connections else "",
            "error kinds": ", ".join(f"{k} x{v}" for k, v in self.errors.most_common(3)),
        }


async def one_request(conn: HttpConnection, path: str, phase: Phase) -> None:
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(conn.get(path), REQUEST_TIMEOUT)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        conn.close()
        phase.errors[type(exc).__name__] += 1
        return
    except TimeoutError:
        conn.close()
        phase.errors["timeout"] += 1
        return
    if status == 200:
        phase.latencies.append(time.perf_counter() - started)
    else:
        phase.errors[f"HTTP {status}"] += 1


async def watch_db_connections(database_url: str, phase: Phase, stop: asyncio.Event) -> None:
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    except psycopg.Error:
        return  # the server is full: the phase's errors say so
    async with conn:
        while not stop.is_set():
            with contextlib.suppress(psycopg.Error):
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    " AND datname = current_database()"
                )
                row = await cursor.fetchone()
                # Minus this watcher's own connection.
                count = int(row[0]) - 1 if row else 0
                phase.peak_db_connections = max(phase.peak_db_connections, count)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


async def run_load(
    port: int, sessions: list[tuple[str, str]], pages: list[str], args: argparse.Namespace
) -> Phase:
    phase = Phase()
    conns = [HttpConnection(port, key) for key, _ in sessions]
    paths = [[page.format(org=org) for page in pages] for _, org in sessions]
    budget = args.requests
    deadline = time.monotonic() + args.seconds

    async def user(index: int, conn: HttpConnection) -> None:
        nonlocal budget
        step = index  # users start at different pages, as real users would
        while budget > 0 and time.monotonic() < deadline:
            budget -= 1
            await one_request(conn, paths[index][step % len(pages)], phase)
            step += 1

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_db_connections(args.pg_url, phase, stop))
    cpu = server_cpu()
    phase.started = time.perf_counter()
    await asyncio.gather(*(user(i, c) for i, c in enumerate(conns)))
    phase.ended = time.perf_counter()
    phase.cpu = server_cpu() - cpu
    stop.set()
    await watcher
    for conn in conns:
        conn.close()
    return phase


SERVER: list[psutil.Process] = []  # the server under test, once started


def server_cpu() -> float:
    """CPU seconds the server's processes have used: unlike latency, hardly changed by what
    else the machine runs (this machine's two cores are shared)."""
    total = 0.0
    for server in SERVER:
        for proc in [server, *server.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


async def run_alone(port: int, session: str, path: str, count: int) -> Phase:
    phase = Phase()
    conn = HttpConnection(port, session)
    cpu = server_cpu()
    phase.started = time.perf_counter()
    for _ in range(count):
        await one_request(conn, path, phase)
    phase.ended = time.perf_counter()
    phase.cpu = server_cpu() - cpu
    conn.close()
    return phase


# -- the run ---------------------------------------------------------------------------------


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listens on port {port}")


def start(
    command: list[str], env: dict[str, str], log: Any = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
    )


def last_error(log: Any) -> str:
    """The server's last logged exception line (its tracebacks are not printed here)."""
    log.seek(0)
    lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith((" ", "Traceback"))]
    return errors[-1][:200] if errors else ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def print_table(rows: list[dict[str, str]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(row.get(c, "").rjust(widths[c]) for c in columns) + " |")


async def measure(
    port: int, sessions: list[tuple[str, str]], args: argparse.Namespace
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    key, org = sessions[0]
    paths = [p.format(org=org) for p in PAGES.values()]
    # Warm up: every page twice, so first-request costs (imports, template compilation) are
    # not in the figures.
    for path in [*paths, BASELINE]:
        await run_alone(port, key, path, 2)
    alone: list[dict[str, str]] = []
    for name, path in [*zip(PAGES, paths, strict=True), ("minimal view", BASELINE)]:
        alone.append((await run_alone(port, key, path, args.alone)).row(name, 1))
    signed_out = await run_alone(port, "", SIGN_IN, args.alone)
    alone.append(signed_out.row("sign-in (signed out)", 1))
    rows: list[dict[str, str]] = []
    for n in args.users:
        pages = await run_load(port, sessions[:n], list(PAGES.values()), args)
        rows.append(pages.row("5 pages", n))
        await asyncio.sleep(1)
        baseline = await run_load(port, sessions[:n], [BASELINE], args)
        rows.append(baseline.row("minimal view", n))
        await asyncio.sleep(1)
    return alone, rows


async def main_async(args: argparse.Namespace, env: dict[str, str]) -> int:
    sandbox_port, port = free_port(), free_port()
    env = {
        **env,
        "KRAKEN_API_URL": f"http://{HOST}:{sandbox_port}",
        "KRAKEN_WS_URL": f"ws://{HOST}:{sandbox_port}/ws/v2",
    }
    manage = [sys.executable, "manage.py"]
    sandbox = start([*manage, "sandbox", "--host", HOST, "--port", str(sandbox_port)], env)
    try:
        await wait_for_port(sandbox_port, sandbox, 30)
        setup_django(env)
        from django.conf import settings

        HttpConnection.cookie_name = settings.SESSION_COOKIE_NAME
        users = max(args.users)
        sessions = await asyncio.to_thread(prepare_database, users, args.org_size)
        pairs = await publish_market_data(env["KRAKEN_API_URL"], env["KRAKEN_WS_URL"])
    finally:
        stop(sandbox)
    print(
        f"prepared {users} signed-in members in organizations of {args.org_size}, "
        f"{pairs} pairs of market data",
        flush=True,
    )

    server_command = [sys.executable, "-m", "kraken_portal.serve", "--host", HOST]
    server_command += ["--port", str(port), "--workers", str(args.workers), "--log-level", "error"]
    with tempfile.TemporaryFile() as server_log:
        server = start(server_command, env, server_log)
        try:
            await wait_for_port(port, server, 60)
            SERVER[:] = [psutil.Process(server.pid)]
            alone, rows = await measure(port, sessions, args)
        finally:
            stop(server)
        error = last_error(server_log)
    print("\nOne user alone (sequential requests):\n")
    print_table(alone)
    if error:
        print(f"\nThe server's last logged error: {error}")
    print(
        f"\nSigned-in users at once, each on its own keep-alive connection, for at most "
        f"{args.seconds:g} s or {args.requests} requests per row; 5 pages = overview, markets, "
        f"pair, keys, audit in turn. Server: kraken_portal.serve, {args.workers} process(es), "
        f"debug off, {os.cpu_count()} cores shared with this client (load average now "
        f"{os.getloadavg()[0]:.1f}).\n"
    )
    print_table(rows)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="50,200", help="comma-separated concurrent users")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound per row")
    parser.add_argument("--requests", type=int, default=6000, help="request bound per row")
    parser.add_argument("--alone", type=int, default=40, help="requests per page, one user")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--org-size", type=int, default=20, help="members per organization")
    # `make bench` passes its own arguments to every script; ignore the ones meant for others.
    args, _ = parser.parse_known_args()
    args.users = [int(n) for n in args.users.split(",") if n]
    return args


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        print("skipped: set DATABASE_URL to a PostgreSQL database (the figures are about it)")
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    args = parse_args()
    with scratch_database(database_url) as bench_url:
        return run(args, bench_url)


@contextlib.contextmanager
def scratch_database(database_url: str) -> Iterator[str]:
    """A fresh database beside DATABASE_URL's (`<name>_http_bench`), dropped afterwards: the
    benchmark's 200 members never land in a developer's database, and every run starts alike."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    name = unquote(parts.path.lstrip("/")) + "_http_bench"
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


def run(args: argparse.Namespace, database_url: str) -> int:
    args.pg_url = database_url
    keyring = "bench:" + base64.b64encode(hashlib.sha256(b"http-bench").digest()).decode()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "PYTHONPATH": str(REPO),
        "PORTAL_KEYRING": os.environ.get("PORTAL_KEYRING", keyring),
        "LOG_LEVEL": "WARNING",
    }
    return asyncio.run(main_async(args, env))


if __name__ == "__main__":
    sys.exit(main())
