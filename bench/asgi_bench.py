"""uvicorn vs daphne on a WebSocket broadcast through the Redis channel layer.

For each server and each client count N, the script starts the server as a subprocess serving
`bench/asgi_bench_app.py` (the portal's Django + Channels stack with one broadcast consumer),
opens N WebSocket clients with the `websockets` library, and broadcasts through the channel
layer exactly as the portal's code does (`group_send` to one group):

- paced: a light steady stream (default 8 messages at 2/s, like a ticker), for latency;
- burst: messages sent back to back (default 20), to find how fast the server can fan out.

Servers: uvicorn (as configured by default: it accepts the permessage-deflate that browsers and
`websockets` offer), uvicorn with compression off, and daphne (which never compresses).

It prints delivered messages/s, p50/p99 latency from `group_send` to the client's receipt, and
the server's CPU use (100 % = one core). Loopback only; bounded to about two minutes.

    .venv/bin/python bench/asgi_bench.py [--clients 200,500] [--servers uvicorn,daphne]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil
from channels_redis.pubsub import RedisPubSubChannelLayer
from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TOTAL_BUDGET = 115.0  # seconds for the whole script, servers included
CONNECT_CONCURRENCY = 50


def server_command(name: str, port: int) -> list[str]:
    app = "bench.asgi_bench_app:application"
    if name in {"uvicorn", "uvicorn-nodeflate"}:
        # Browsers offer permessage-deflate and uvicorn accepts it; daphne does not compress.
        extra = ["--ws-per-message-deflate", "false"] if name == "uvicorn-nodeflate" else []
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            *extra,
        ]
    if name == "daphne":
        return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "-v", "0", app]
    raise ValueError(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Phase:
    sent: int = 0
    expected: int = 0
    latencies: list[float] = field(default_factory=list)
    first_send: float = 0.0
    last_receipt: float = 0.0
    cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    wall: float = 0.0

    def figures(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        delivered = len(lat)
        span = max(self.last_receipt - self.first_send, 1e-9)
        pct = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
        return {
            "delivered": delivered,
            "lost": self.expected - delivered,
            "rate": delivered / span,
            "p50": pct[49] * 1000,
            "p99": pct[98] * 1000,
            "server_cpu": 100 * self.cpu_seconds / max(self.wall, 1e-9),
            "client_cpu": 100 * self.client_cpu_seconds / max(self.wall, 1e-9),
        }


class Clients:
    """N WebSocket clients; each receipt is stamped against the send time in the message."""

    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.phase: Phase | None = None
        self.done = asyncio.Event()
        self.compression = ""

    async def open(self, url: str, origin: str, count: int) -> float:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one() -> ClientConnection:
            async with gate:
                return await connect(url, origin=origin, proxy=None, max_queue=None)  # type: ignore[arg-type]

        started = time.perf_counter()
        self.sockets = list(await asyncio.gather(*(one() for _ in range(count))))
        elapsed = time.perf_counter() - started
        extensions = self.sockets[0].response.headers.get("Sec-WebSocket-Extensions", "")
        self.compression = "deflate" if "deflate" in extensions else "none"
        self.readers = [asyncio.create_task(self._read(ws)) for ws in self.sockets]
        return elapsed

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                now = time.perf_counter()
                phase = self.phase
                if phase is None:
                    continue
                sent_at = float(str(message).split(":", 1)[1])
                phase.latencies.append(now - sent_at)
                phase.last_receipt = now
                if len(phase.latencies) >= phase.expected:
                    self.done.set()

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


async def run_phase(
    layer: RedisPubSubChannelLayer,
    group: str,
    clients: Clients,
    server: psutil.Process,
    messages: int,
    rate: float | None,
    timeout: float,
) -> Phase:
    phase = Phase(expected=messages * len(clients.sockets))
    clients.done.clear()
    clients.phase = phase
    me = psutil.Process()
    cpu_before, wall_before = cpu_seconds(server), time.perf_counter()
    client_before = cpu_seconds(me)
    phase.first_send = time.perf_counter()
    for i in range(messages):
        text = f"{i}:{time.perf_counter()!r}"
        await layer.group_send(group, {"type": "bench.message", "text": text})
        phase.sent += 1
        if rate:
            await asyncio.sleep(max(0.0, phase.first_send + (i + 1) / rate - time.perf_counter()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(clients.done.wait(), timeout)
    phase.wall = time.perf_counter() - wall_before
    phase.cpu_seconds = cpu_seconds(server) - cpu_before
    phase.client_cpu_seconds = cpu_seconds(me) - client_before
    clients.phase = None
    return phase


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError("server did not start listening")


async def bench_one(name: str, n: int, args: argparse.Namespace, deadline: float) -> dict[str, str]:
    port = free_port()
    group = f"bench.{random.randrange(1 << 30)}"
    env = {
        **os.environ,
        "BENCH_GROUP": group,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.base",
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        server_command(name, port),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # The same prefix as the server's CHANNEL_LAYERS (settings/base.py): pub/sub channels are
    # not per database, so the portal prefixes them with the Redis database number.
    prefix = "asgi.db" + (urlparse(args.redis_url).path.strip("/") or "0")
    layer = RedisPubSubChannelLayer(hosts=[args.redis_url], prefix=prefix)
    clients = Clients()
    result: dict[str, str] = {"server": name, "clients": str(n)}
    try:
        await wait_for_port(port, proc, timeout=20)
        server = psutil.Process(proc.pid)
        url, origin = f"ws://{HOST}:{port}/ws/bench/", f"http://{HOST}:{port}"
        connect_time = await clients.open(url, origin, n)
        result["connect s"] = f"{connect_time:.2f}"
        result["deflate"] = clients.compression
        remaining = max(5.0, deadline - time.monotonic())
        paced = await run_phase(
            layer, group, clients, server, args.paced, args.rate, min(12.0, remaining)
        )
        remaining = max(5.0, deadline - time.monotonic())
        burst = await run_phase(
            layer, group, clients, server, args.burst, None, min(15.0, remaining)
        )
        p, b = paced.figures(), burst.figures()
        delivered = max(int(p["delivered"] + b["delivered"]), 1)
        us_per_msg = (paced.cpu_seconds + burst.cpu_seconds) * 1e6 / delivered
        result.update(
            {
                "paced p50/p99 ms": f"{p['p50']:.0f} / {p['p99']:.0f}",
                "burst msg/s": f"{b['rate']:,.0f}",
                "burst p50/p99 ms": f"{b['p50']:.0f} / {b['p99']:.0f}",
                "server CPU (burst)": f"{b['server_cpu']:.0f}%",
                "client CPU (burst)": f"{b['client_cpu']:.0f}%",
                "server µs/msg": f"{us_per_msg:.0f}",
                "lost": str(int(p["lost"] + b["lost"])),
            }
        )
    finally:
        await clients.close()
        with contextlib.suppress(Exception):
            await layer.flush()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return result


def print_table(rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(row.get(c, "").rjust(widths[c]) for c in columns) + " |")


async def main_async(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + TOTAL_BUDGET
    rows = []
    failed = 0
    for n in args.clients:
        for name in args.servers:
            if time.monotonic() > deadline - 10:
                print(f"(skipped {name} N={n}: time budget spent)")
                continue
            try:
                rows.append(await bench_one(name, n, args, deadline))
            except Exception as error:  # a failed run is reported, the others still run
                failed += 1
                rows.append({"server": name, "clients": str(n), "connect s": f"failed: {error}"})
            print(f"  done: {name} N={n}", file=sys.stderr, flush=True)
    print(
        f"\nWebSocket broadcast via the Redis channel layer on {psutil.cpu_count()} cores; "
        f"paced = {args.paced} messages at {args.rate:g}/s, burst = {args.burst} back to back. "
        "Latency is group_send to client receipt; CPU 100% = one core; server µs/msg is the "
        "server's CPU time per delivered message over both phases (independent of machine load; "
        f"load average now {os.getloadavg()[0]:.1f}).\n"
    )
    print_table(rows)
    # Figures never fail the script; a server that could not be run does.
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="200,500", help="comma-separated client counts")
    parser.add_argument("--servers", default="uvicorn,uvicorn-nodeflate,daphne")
    parser.add_argument("--paced", type=int, default=8, help="messages in the paced phase")
    parser.add_argument("--rate", type=float, default=2.0, help="paced messages per second")
    parser.add_argument("--burst", type=int, default=20, help="messages in the burst phase")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    # `make bench` passes its own arguments to every script; ignore the ones meant for others.
    args, _ = parser.parse_known_args()
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.servers = [s for s in args.servers.split(",") if s]
    return args


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
