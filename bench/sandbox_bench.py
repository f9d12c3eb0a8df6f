"""Kraken sandbox throughput benchmark (printed, never asserted).

* private REST req/s for ``Balance`` and for ``AddOrder`` with matching, several concurrent
  signed aiohttp clients (one API key each: nonces are per key) against one sandbox process;
* book updates/s delivered to 100 WS subscribers.

Run: ``python bench/sandbox_bench.py [--seconds 5] [--clients 8]`` (``make bench`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox  # noqa: E402

ParamsFor = Callable[[int], dict[str, str]]


class Signer:
    def __init__(self, key: str, secret: str) -> None:
        self.key = key
        self.secret = base64.b64decode(secret)
        self.nonce = int(time.time() * 1000)

    def sign(self, method: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        self.nonce += 1
        body = urllib.parse.urlencode({**params, "nonce": str(self.nonce)})
        path = f"/0/private/{method}"
        digest = hashlib.sha256((str(self.nonce) + body).encode()).digest()
        sig = base64.b64encode(
            hmac.new(self.secret, path.encode() + digest, hashlib.sha512).digest()
        ).decode()
        return body.encode(), {
            "API-Key": self.key,
            "API-Sign": sig,
            "Content-Type": "application/x-www-form-urlencoded",
        }


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    signer: Signer,
    method: str,
    params_for: ParamsFor | None,
    until: float,
    counts: dict[str, int],
) -> None:
    i = 0
    while time.monotonic() < until:
        params = params_for(i) if params_for is not None else {}
        body, headers = signer.sign(method, params)
        async with session.post(f"{url}/0/private/{method}", data=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
        counts["ok" if not data["error"] else "err"] += 1
        if data["error"] and counts["err"] <= 3:
            print(f"  {method} error sample: {data['error']}")
        i += 1


async def rest_rate(
    sb: SandboxProcess,
    method: str,
    clients: int,
    seconds: float,
    params_for: ParamsFor | None = None,
) -> tuple[float, dict[str, int]]:
    signers = []
    for _ in range(clients):
        acct = sb.create_account({"USD": "100000000", "XBT": "10000"}, tier="pro")
        signers.append(Signer(*sb.create_key(acct)))
    counts = {"ok": 0, "err": 0}
    connector = aiohttp.TCPConnector(limit=clients * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up so connection setup is not measured.
        await asyncio.gather(
            *(
                _client(
                    session,
                    sb.url,
                    s,
                    method,
                    params_for,
                    time.monotonic() + 0.3,
                    {"ok": 0, "err": 0},
                )
                for s in signers
            )
        )
        start = time.monotonic()
        until = start + seconds
        await asyncio.gather(
            *(_client(session, sb.url, s, method, params_for, until, counts) for s in signers)
        )
        elapsed = time.monotonic() - start
    return counts["ok"] / elapsed, counts


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux /proc), to report load-independent cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def add_order_params(i: int) -> dict[str, str]:
    # Alternate marketable buys and sells: every request matches against the book.
    side = "buy" if i % 2 == 0 else "sell"
    return {"pair": "XBTUSD", "type": side, "ordertype": "market", "volume": "0.001"}


async def ws_rate(sb: SandboxProcess, subscribers: int, seconds: float) -> tuple[float, int]:
    received = 0
    stop = asyncio.Event()
    ready = 0

    async def sub(session: aiohttp.ClientSession) -> None:
        nonlocal received, ready
        async with session.ws_connect(sb.ws_url) as ws:
            await ws.send_str(
                json.dumps(
                    {
                        "method": "subscribe",
                        "params": {
                            "channel": "book",
                            "symbol": ["BTC/USD", "ETH/USD"],
                            "depth": 10,
                        },
                    }
                )
            )
            ready += 1
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.receive(), 0.5)
                except TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if stop.is_set():
                    break
                if '"channel":"book","type":"update"' in msg.data:
                    received += 1

    connector = aiohttp.TCPConnector(limit=subscribers + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(sub(session)) for _ in range(subscribers)]
        while ready < subscribers:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        received = 0
        start = time.monotonic()
        await asyncio.sleep(seconds)
        total = received
        elapsed = time.monotonic() - start
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return total / elapsed, total


def _run[T](coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--tick-ms", type=int, default=20)
    args, _unknown = parser.parse_known_args()  # run_all.py forwards its own argv

    sb = start_sandbox(["--tier", "pro"], seed=1)
    try:
        sb.configure(rate_limits=False)  # measure the engine, not Kraken's throttles
        pid = sb.proc.pid
        cpu0 = cpu_seconds(pid)
        rate, counts = _run(rest_rate(sb, "Balance", args.clients, args.seconds))
        cpu = (cpu_seconds(pid) - cpu0) / max(1, counts["ok"]) * 1e6
        print(
            f"Balance:  {rate:8.0f} req/s  ({counts['ok']} ok, {counts['err']} errors, "
            f"{args.clients} signed clients; sandbox CPU {cpu:.0f} us/req incl. ticks)"
        )
        cpu0 = cpu_seconds(pid)
        rate, counts = _run(rest_rate(sb, "AddOrder", args.clients, args.seconds, add_order_params))
        cpu = (cpu_seconds(pid) - cpu0) / max(1, counts["ok"]) * 1e6
        print(
            f"AddOrder: {rate:8.0f} req/s  ({counts['ok']} ok, {counts['err']} errors, "
            f"market orders matched against the book; sandbox CPU {cpu:.0f} us/req)"
        )
        print(
            f"          load average now: {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs (client and server share them)"
        )
    finally:
        stop_sandbox(sb)

    sb = start_sandbox(["--tick-ms", str(args.tick_ms)], seed=2)
    try:
        rate, total = _run(ws_rate(sb, args.subscribers, args.seconds))
        print(
            f"WS book:  {rate:8.0f} updates/s delivered to {args.subscribers} subscribers "
            f"(BTC/USD + ETH/USD depth 10, {args.tick_ms} ms market tick; {total} frames)"
        )
    finally:
        stop_sandbox(sb)


if __name__ == "__main__":
    main()
