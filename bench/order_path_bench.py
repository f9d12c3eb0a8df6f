"""The desk's order path with real parts, as issue 11 asks (printed, never asserted).

(a) Latency: a signed-in, 2FA-verified trader POSTs the ticket (as htmx does) to the portal's
    ASGI server (`python -m kraken_portal.serve`); the clock stops when the order's row arrives
    on the trader's live socket (`/ws/o/<org>/live/`) acknowledged (state no longer
    `submitting`). On the way: PostgreSQL, Redis (broker and channel layer), a real Celery
    worker on the `orders` queue, the local Kraken sandbox. Against it, in the same run, a
    direct python-kraken-sdk AddOrder to the same sandbox. Orders alternate one at a time.
(b) Throughput: 2 Celery workers, 4 accounts (one key each), one client per account POSTing
    its next order as soon as the previous one is acknowledged on the socket. Prints orders/s,
    nonce errors, and the audit trail's share of the portal's time (the worker and server run
    under bench/order_path_probe.py, which times `audit_record`, `order_submit` and each task).

    DATABASE_URL=... REDIS_URL=... python bench/order_path_bench.py [--orders 60] [--burst 40]

Uses DATABASE_URL and REDIS_URL like the portal (migrates; creates a bench organization).
BENCH_PROFILE=dir: run the server and the worker under cProfile (stats written when they stop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SETTINGS = "kraken_portal.settings.test"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
ROW = re.compile(r'id="desk-order-(\d+)"[^>]*data-state="([a-z_]+)"')
SUBMITTED = re.compile(r"Order #(\d+) submitted")
TIMING_KEY = "orderbench:timing"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL.
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


# -- set-up -----------------------------------------------------------------------------------


def prepare(sandbox: Any, n_accounts: int) -> dict[str, Any]:
    """A bench organization, a trader with a verified session, `n_accounts` accounts each with
    its own sandbox account and trading key; plus a key for the direct SDK path."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.middleware.csrf import _get_new_csrf_string  # type: ignore[attr-defined]

    from apps.accounts.models import EncryptedTOTPDevice
    from apps.accounts.services import totp_device_create
    from apps.kraken.services import reference_data_refresh
    from apps.vault.policy import ALLOWED
    from tests.exchange.conftest import _store
    from tests.factories import (
        MembershipFactory,
        OrganizationFactory,
        master_account,
        subaccount_of,
    )

    settings.KRAKEN_API_URL = sandbox.url
    reference_data_refresh()
    permissions = sorted(str(p) for p in ALLOWED["trading"])
    slug = f"ob-{uuid.uuid4().hex[:8]}"
    org = OrganizationFactory(name=f"Order Bench {slug}", slug=slug)
    trader = MembershipFactory(org=org, role="trader", user__email=f"{slug}@example.test")
    master = master_account(org, tier="pro")
    accounts = [master, *(subaccount_of(master, f"Desk {i}") for i in range(1, n_accounts))]
    for account in accounts:
        sandbox_id = sandbox.create_account({"USD": "10000000", "XBT": "10"}, tier="pro")
        api_key, secret = sandbox.create_key(sandbox_id, permissions=permissions)
        _store(trader, account, api_key, secret, "trading")
    direct_id = sandbox.create_account({"USD": "10000000", "XBT": "10"}, tier="pro")
    sdk_key, sdk_secret = sandbox.create_key(direct_id, permissions=permissions)

    user = trader.user
    device = EncryptedTOTPDevice.objects.filter(
        user=user, confirmed=True
    ).first() or totp_device_create(user=user, name="bench", confirmed=True)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "apps.accounts.backends.EmailBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session["otp_device_id"] = device.persistent_id
    session.create()
    csrf = _get_new_csrf_string()
    return {
        "slug": slug,
        "accounts": [a.pk for a in accounts],
        "cookie": (
            f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
            f"{settings.CSRF_COOKIE_NAME}={csrf}"
        ),
        "csrf": csrf,
        "sdk": (sdk_key, sdk_secret),
    }


class Processes:
    """The portal server and Celery workers, started with the sandbox's URLs; stopped at exit."""

    def __init__(self, sandbox: Any, probe: bool) -> None:
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE=SETTINGS,
            KRAKEN_API_URL=sandbox.url,
            KRAKEN_WS_URL=sandbox.ws_url,
            KRAKEN_WS_AUTH_URL=sandbox.ws_auth_url,
            BENCH_TIMING="1" if probe else "0",
        )
        self.running: list[subprocess.Popen[bytes]] = []
        self.profile = os.environ.get("BENCH_PROFILE")

    def _python(self, name: str) -> list[str]:
        if self.profile:
            Path(self.profile).mkdir(parents=True, exist_ok=True)
            out = Path(self.profile) / f"{name}-{int(time.time())}.prof"
            return [sys.executable, "-m", "cProfile", "-o", str(out)]
        return [sys.executable]

    def server(self) -> str:
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        self.running.append(
            subprocess.Popen(
                [*self._python("server"), str(ROOT / "bench/order_path_probe.py"), "server", *args],
                cwd=ROOT,
                env=self.env,
            )
        )
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return f"127.0.0.1:{port}"

    def workers(self, count: int) -> None:
        from kraken_portal.celery import app

        app.control.purge()
        names = []
        for _ in range(count):
            name = f"orderbench-{uuid.uuid4().hex[:6]}@localhost"
            names.append(name)
            self.running.append(
                subprocess.Popen(
                    [
                        *self._python("worker"),
                        str(ROOT / "bench/order_path_probe.py"),
                        "worker",
                        *("-A", "kraken_portal", "worker", "--queues", "orders,default"),
                        *("--concurrency", "1", "--pool", "prefork", "--hostname", name),
                        *("--without-gossip", "--without-mingle", "--loglevel", "WARNING"),
                    ],
                    cwd=ROOT,
                    env=self.env,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        waiting = set(names)
        while waiting and time.monotonic() < deadline:
            for reply in app.control.ping(destination=list(waiting), timeout=0.5):
                waiting -= set(reply)
        if waiting:
            raise RuntimeError(f"workers did not answer: {waiting}")

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                # SIGTERM: Celery's warm shutdown; SIGINT: uvicorn's graceful stop.
                worker = "worker" in [str(arg) for arg in process.args]  # type: ignore[union-attr]
                process.send_signal(signal.SIGTERM if worker else signal.SIGINT)
        for process in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


# -- the trader's client ----------------------------------------------------------------------


class Trader:
    """One signed-in trader: a keep-alive HTTP connection per account and one live socket."""

    def __init__(self, host: str, setup: dict[str, Any]) -> None:
        self.host = host
        self.setup = setup
        self.acks: dict[int, tuple[float, str]] = {}
        self.waiters: dict[int, asyncio.Future[tuple[float, str]]] = {}

    async def open(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            f"ws://{self.host}/ws/o/{self.setup['slug']}/live/",
            additional_headers={"Cookie": self.setup["cookie"], "Origin": f"http://{self.host}"},
            max_queue=None,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            for pk_text, state in ROW.findall(str(message)):
                pk = int(pk_text)
                if state == "submitting" or pk in self.acks:
                    continue
                self.acks[pk] = (now, state)
                waiter = self.waiters.pop(pk, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((now, state))

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.host.split(":")
        return await asyncio.open_connection(host, int(port))

    async def submit(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        account: int,
        price: str,
    ) -> tuple[float, str]:
        """POST one ticket; wait for its acknowledgement on the socket. Returns (ms, state)."""
        reader, writer = conn
        body = urllib.parse.urlencode(
            {
                "account": account,
                "pair": "BTC/USD",
                "side": "buy",
                "order_type": "limit",
                "quantity": "0.01",
                "quantity_in": "base",
                "price": price,
                "time_in_force": "GTC",
                "confirmed": "on",
            }
        ).encode()
        path = f"/o/{self.setup['slug']}/desk/orders/"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Cookie: {self.setup['cookie']}\r\nX-CSRFToken: {self.setup['csrf']}\r\n"
            f"Origin: http://{self.host}\r\nHX-Request: true\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        start = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        page = (await reader.readexactly(length)).decode()
        found = SUBMITTED.search(page)
        if found is None:
            raise RuntimeError(f"submit refused: {status_line!r} {page[:2000]}")
        pk = int(found.group(1))
        if pk in self.acks:
            done, state = self.acks[pk]
        else:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[pk] = waiter
            done, state = await asyncio.wait_for(waiter, timeout=60)
        return (done - start) * 1000, state


# -- (a) latency ------------------------------------------------------------------------------


async def latency(host: str, setup: dict[str, Any], sandbox: Any, orders: int) -> dict[str, Any]:
    from kraken.spot import Trade

    sdk = Trade(key=setup["sdk"][0], secret=setup["sdk"][1], url=sandbox.url)
    trader = Trader(host, setup)
    await trader.open()
    conn = await trader.connection()
    account = setup["accounts"][0]
    portal: list[float] = []
    direct: list[float] = []
    states: dict[str, int] = {}
    try:
        for n in range(-5, orders):  # five warm-up orders each way, not counted
            price = str(1000 + n % 500)
            start = time.perf_counter()
            await asyncio.to_thread(
                sdk.create_order,
                ordertype="limit",
                side="buy",
                pair="XBTUSD",
                volume="0.01",
                price=price,
            )
            elapsed = (time.perf_counter() - start) * 1000
            ms, state = await trader.submit(conn, account, price)
            if n >= 0:
                direct.append(elapsed)
                portal.append(ms)
                states[state] = states.get(state, 0) + 1
            await asyncio.sleep(0.05)
    finally:
        conn[1].close()
        await trader.close()
    return {"portal": portal, "direct": direct, "states": states}


# -- (b) throughput ---------------------------------------------------------------------------


async def throughput(host: str, setup: dict[str, Any], per_account: int) -> dict[str, Any]:
    trader = Trader(host, setup)
    await trader.open()
    states: dict[str, int] = {}

    async def client(index: int, account: int) -> None:
        conn = await trader.connection()
        try:
            for n in range(per_account):
                _ms, state = await trader.submit(conn, account, str(900 + index * 10 + n % 50))
                states[state] = states.get(state, 0) + 1
        finally:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i, a) for i, a in enumerate(setup["accounts"])))
    elapsed = time.perf_counter() - start
    await trader.close()
    return {"elapsed": elapsed, "orders": per_account * len(setup["accounts"]), "states": states}


def nonce_errors(slug: str) -> tuple[int, int]:
    from apps.exchange.models import Operation

    ops = Operation.objects.filter(org__slug=slug)
    return (
        ops.filter(error_message__icontains="nonce").count()
        + ops.filter(error_code__icontains="nonce").count(),
        ops.count(),
    )


def timings() -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    raw = client.hgetall(TIMING_KEY)
    client.delete(TIMING_KEY)
    return {k.decode(): float(v) for k, v in raw.items()}


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=60, help="(a): orders each way")
    parser.add_argument("--burst", type=int, default=40, help="(b): orders per account")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    import django

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS),
        check=True,
    )
    django.setup()
    from tests.plugins.sandbox import start_sandbox, stop_sandbox

    print(f"load before: {os.getloadavg()}", flush=True)
    sandbox = start_sandbox()
    processes = Processes(sandbox, probe=os.environ.get("BENCH_TIMING_DETAIL") == "1")
    try:
        setup = prepare(sandbox, 1)
        host = processes.server()
        processes.workers(1)
        timings()
        a = asyncio.run(latency(host, setup, sandbox, args.orders))
        processes.stop()
        detail = timings()
    finally:
        processes.stop()
        stop_sandbox(sandbox)
    portal, direct = a["portal"], a["direct"]
    print(f"(a) {len(portal)} orders each way, one at a time; states {a['states']}")
    print(f"{'path':52} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in (
        ("python-kraken-sdk AddOrder (direct)", direct),
        ("ticket POST -> acknowledged on trader's socket", portal),
    ):
        print(
            f"{name:52} {percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f} "
            f"{statistics.fmean(values):8.1f}"
        )
    print(
        f"portal overhead: p50 {percentile(portal, 0.5) - percentile(direct, 0.5):+.1f} ms, "
        f"p99 {percentile(portal, 0.99) - percentile(direct, 0.99):+.1f} ms (goal p50 <= +30 ms)",
        flush=True,
    )
    if detail:
        print(
            "    per stage, total s / calls (BENCH_TIMING_DETAIL): "
            + ", ".join(
                f"{k} {v:.2f}/{detail.get(k + '_calls', 0):.0f}"
                for k, v in sorted(detail.items())
                if not k.endswith("_calls")
            )
        )
    if args.skip_throughput:
        print(f"load after: {os.getloadavg()}")
        return 0

    sandbox = start_sandbox()
    processes = Processes(sandbox, probe=True)
    try:
        setup = prepare(sandbox, 4)
        host = processes.server()
        processes.workers(2)
        timings()
        b = asyncio.run(throughput(host, setup, args.burst))
        processes.stop()  # the probes flush as they go; stopping also ends their timing
        times = timings()
        nonces, operations = nonce_errors(setup["slug"])
    finally:
        processes.stop()
        stop_sandbox(sandbox)
    busy = times.get("submit", 0.0) + times.get("task", 0.0)
    print(
        f"(b) 2 workers, 4 accounts, {b['orders']} orders in {b['elapsed']:.1f} s: "
        f"{b['orders'] / b['elapsed']:.1f} orders/s; states {b['states']}; "
        f"nonce errors {nonces} of {operations} operations"
    )
    print(
        "    time in order_submit (server) {submit:.2f} s, in tasks (workers) {task:.2f} s, "
        "in audit_record {audit:.2f} s ({calls:.0f} records): audit is {share:.1f}% of "
        "submit+task time".format(
            submit=times.get("submit", 0.0),
            task=times.get("task", 0.0),
            audit=times.get("audit", 0.0),
            calls=times.get("audit_calls", 0.0),
            share=100 * times.get("audit", 0.0) / busy if busy else 0.0,
        )
    )
    print(f"    probe totals: {json.dumps({k: round(v, 3) for k, v in times.items()})}")
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
