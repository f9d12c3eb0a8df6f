"""Market fan-out benchmark: N signed-in sockets on the overview page, the sandbox driving 12 pairs.

For each N it measures, over a fixed window after every client has connected:
tick-to-client latency (the feeder's receive time is in each fragment's `data-t`; the clients
subtract it from their own clock, same machine), frames delivered per second, the server's CPU
and its memory per connection. A minimal `websockets` broadcast server, fed the very same
fragments from the channel layer, is the baseline. Loopback only; prints a table, never fails.

    python bench/market_bench.py [--clients 250,500,1000,2000] [--seconds 10]

Uses DATABASE_URL and REDIS_URL like the portal (a bench organization and user are created).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.test")

STAMP = re.compile(r'data-t="(\d+)"')
ORG_SLUG = "bench-markets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- client process ---------------------------------------------------------------------------


async def run_clients(url: str, n: int, seconds: float, cookie: str, origin: str) -> None:
    import websockets

    raise_fd_limit()
    headers = {"Origin": origin}
    if cookie:
        headers["Cookie"] = cookie
    latencies: list[int] = []
    frames = 0
    measuring = False
    sockets: list[Any] = []
    gate = asyncio.Semaphore(64)
    failures = 0

    async def reader(ws: Any) -> None:
        nonlocal frames
        try:
            async for message in ws:
                if not measuring:
                    continue
                now = int(time.time() * 1000)
                frames += 1
                latencies.extend(now - int(t) for t in STAMP.findall(message))
        except websockets.ConnectionClosed:
            pass

    async def connect() -> None:
        nonlocal failures
        async with gate:
            try:
                ws = await websockets.connect(
                    url,
                    additional_headers=headers,
                    open_timeout=60,
                    max_queue=None,
                    # Browsers always offer permessage-deflate; the server decides.
                    compression="deflate",
                )
            except (OSError, websockets.WebSocketException, TimeoutError):
                failures += 1
                return
        sockets.append(ws)

    await asyncio.gather(*(connect() for _ in range(n)))
    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    await asyncio.sleep(1.0)  # let snapshots drain before measuring
    print("READY", flush=True)
    measuring = True
    started = time.monotonic()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.monotonic() - started
    open_at_end = sum(1 for ws in sockets if ws.state.name == "OPEN")
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    for task in readers:
        task.cancel()
    latencies.sort()
    result = {
        "connected": len(sockets),
        "failed": failures,
        "open_at_end": open_at_end,
        "frames": frames,
        "elapsed": elapsed,
        "p50": latencies[len(latencies) // 2] if latencies else None,
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "fragments": len(latencies),
    }
    print(json.dumps(result), flush=True)


# -- baseline server --------------------------------------------------------------------------


async def baseline_server(port: int) -> None:
    """The least a server can do: receive each overview batch once and broadcast it."""
    import django
    import websockets

    raise_fd_limit()
    django.setup()
    import logging

    logging.getLogger("websockets").setLevel(logging.WARNING)
    from channels.layers import get_channel_layer

    from apps.market.store import OVERVIEW_CHANNEL

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(OVERVIEW_CHANNEL, channel)
    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    deflate = os.environ.get("BENCH_DEFLATE", "0") == "1"
    compression = "deflate" if deflate else None
    async with websockets.serve(
        handler, "127.0.0.1", port, max_queue=None, compression=compression
    ):
        while True:
            message = await layer.receive(channel)
            frame = "".join(html for _, html in message["parts"])
            websockets.broadcast(clients, frame)


# -- coordinator ------------------------------------------------------------------------------


def prepare_member() -> str:
    """A signed-in, 2FA-verified bench member; returns the session cookie."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.accounts.models import EncryptedTOTPDevice
    from apps.accounts.services import totp_device_create
    from apps.orgs.models import Membership, Organization
    from apps.orgs.permissions import Role

    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(email="bench-markets@example.test")
    org, _ = Organization.objects.get_or_create(
        slug=ORG_SLUG, defaults={"name": "Bench Markets", "country": "GB"}
    )
    Membership.objects.get_or_create(user=user, org=org, defaults={"role": Role.VIEWER})
    device = EncryptedTOTPDevice.objects.filter(
        user=user, name="bench", confirmed=True
    ).first() or totp_device_create(user=user, name="bench", confirmed=True)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "apps.accounts.backends.EmailBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session["otp_device_id"] = device.persistent_id
    session.create()
    return f"sessionid={session.session_key}"


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL.
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open")


class SourceCounter:
    """Counts the overview batches the feeder publishes, so delivery is judged against supply."""

    def __init__(self) -> None:
        import threading

        self.count = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self._thread.start()

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        from apps.market.store import OVERVIEW_CHANNEL

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(OVERVIEW_CHANNEL, channel)
        while True:
            await layer.receive(channel)
            self.count += 1


def measure(
    server_pid: int, url: str, n: int, seconds: float, cookie: str, source: SourceCounter
) -> dict[str, Any]:
    import psutil

    server = psutil.Process(server_pid)
    # With --workers the server is a supervisor and its worker processes: count them all.
    family = [server, *server.children(recursive=True)]

    def rss() -> int:
        return sum(p.memory_info().rss for p in family)

    rss_before = rss()
    # The session cookie travels in the environment, not on a command line others can read.
    client = subprocess.Popen(
        [sys.executable, __file__, "--client-mode", url, str(n), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, BENCH_COOKIE=cookie),
    )
    assert client.stdout is not None
    try:
        line = client.stdout.readline()
        if line.strip() != "READY":
            client.wait()
            raise RuntimeError(f"client process failed: {line!r}")
        client_ps = psutil.Process(client.pid)
        for process in family:
            process.cpu_percent()
        client_ps.cpu_percent()
        supplied = source.count
        time.sleep(seconds)
        supplied = source.count - supplied
        server_cpu = sum(p.cpu_percent() for p in family)
        client_cpu = client_ps.cpu_percent()
        rss_during = rss()
        result: dict[str, Any] = json.loads(client.stdout.readline())
        client.wait()
    finally:
        if client.poll() is None:  # interrupted: never leave the client process behind
            client.kill()
            client.wait()
    result.update(
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        kib_per_conn=(rss_during - rss_before) / 1024 / max(result["connected"], 1),
        fps=result["frames"] / result["elapsed"],
        # Share of the frames the feeder supplied that reached the clients (1.0: all of them).
        delivered=result["frames"] / max(supplied * result["connected"], 1),
    )
    time.sleep(2)  # let the server notice the disconnects before the next round
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="turn permessage-deflate on in both servers (the portal runs without it, see"
        " kraken_portal/serve.py)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes for the portal (Procfile: one, or WEB_CONCURRENCY)",
    )
    parser.add_argument(
        "--flow-rate",
        type=float,
        default=4.0,
        help="the sandbox's outside trades per pair per second: at 4 every pair trades on every"
        " 250 ms tick, so every overview frame carries all 12 tiles at the 4 Hz cap, the worst"
        " case (the sandbox's own 0.6 gives about 9 tiles a frame)",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]

    from tests.plugins.sandbox import start_sandbox, stop_sandbox

    raise_fd_limit()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="kraken_portal.settings.test")
    env.pop("MARKET_PAIRS", None)  # every pair the sandbox lists (12)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    cookie = prepare_member()
    sandbox = start_sandbox()
    sandbox.configure(flow_rate=args.flow_rate)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        env.update(KRAKEN_API_URL=sandbox.url, KRAKEN_WS_URL=sandbox.ws_url)
        processes.append(
            subprocess.Popen([sys.executable, "manage.py", "marketfeed"], cwd=ROOT, env=env)
        )
        portal_port, baseline_port = free_port(), free_port()
        # BENCH_PROFILE=path: run the portal under cProfile (stats written when it stops).
        profile = os.environ.get("BENCH_PROFILE")
        profiler = ("-m", "cProfile", "-o", profile) if profile else ()
        portal = subprocess.Popen(
            [
                *(sys.executable, *profiler, "-m", "kraken_portal.serve"),
                *("--host", "127.0.0.1", "--port", str(portal_port), "--log-level", "warning"),
                *(("--deflate",) if args.deflate else ()),
                *("--workers", str(args.workers)),
            ],
            cwd=ROOT,
            env=env,
        )
        processes.append(portal)
        baseline = subprocess.Popen(
            [sys.executable, __file__, "--baseline-mode", str(baseline_port)],
            cwd=ROOT,
            env=dict(env, BENCH_DEFLATE="1" if args.deflate else "0"),
        )
        processes.append(baseline)
        wait_http(f"http://127.0.0.1:{portal_port}/healthz")
        wait_port(baseline_port)
        time.sleep(3)  # the feeder has subscribed and published every pair
        portal_url = f"ws://127.0.0.1:{portal_port}/ws/o/{ORG_SLUG}/markets/"
        baseline_url = f"ws://127.0.0.1:{baseline_port}/"
        rows = []
        source = SourceCounter()
        for n in counts:
            ours = measure(portal.pid, portal_url, n, args.seconds, cookie, source)
            base = measure(baseline.pid, baseline_url, n, args.seconds, "", source)
            rows.append((n, ours, base))
            print(f"N={n}: portal {ours}\n       baseline {base}", file=sys.stderr, flush=True)
        print_table(rows)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)  # graceful: uvicorn and the feeder clean up
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_sandbox(sandbox)
    return 0


def print_table(rows: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
    head = (
        f"{'N':>5} {'server':>8} {'open':>5} {'p50 ms':>7} {'p99 ms':>7} {'frames/s':>9} "
        f"{'Hz/cli':>6} {'tiles/fr':>8} "
        f"{'deliv%':>6} {'srv CPU%':>8} {'cli CPU%':>8} {'KiB/conn':>8} {'vs base':>8}"
    )
    print(head)
    print("-" * len(head))
    for n, ours, base in rows:
        for name, r in (("portal", ours), ("baseline", base)):
            ratio = f"{ours['fps'] / base['fps']:.2f}" if name == "portal" and base["fps"] else ""
            print(
                f"{n:>5} {name:>8} {r['open_at_end']:>5} {r['p50'] or 0:>7} {r['p99'] or 0:>7} "
                f"{r['fps']:>9.0f} {r['fps'] / max(r['open_at_end'], 1):>6.2f} "
                f"{r['fragments'] / max(r['frames'], 1):>8.1f} {r['delivered'] * 100:>6.0f} "
                f"{r['server_cpu']:>8.0f} {r['client_cpu']:>8.0f} "
                f"{r['kib_per_conn']:>8.1f} {ratio:>8}"
            )
    print(
        "\nframes/s: frames all clients received per second; Hz/cli: frames per client per"
        " second (tiles at most 4 a second, plus the feed's pulse once a second, often in the"
        " same frame); tiles/fr: price tiles per frame;"
        " deliv%: share of the overview"
        " batches the feeder published in the window that reached every client (latest-wins"
        " merging under load lowers it); vs base: portal frames/s over baseline frames/s."
        f"\nLoad average during the run: {os.getloadavg()}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client-mode":
        _, _, url, n, seconds = sys.argv
        cookie = os.environ.get("BENCH_COOKIE", "")
        asyncio.run(run_clients(url, int(n), float(seconds), cookie, origin="http://127.0.0.1"))
    elif len(sys.argv) > 1 and sys.argv[1] == "--baseline-mode":
        with contextlib.suppress(KeyboardInterrupt):  # stopped by the coordinator's SIGINT
            asyncio.run(baseline_server(int(sys.argv[2])))
    else:
        sys.exit(main())
