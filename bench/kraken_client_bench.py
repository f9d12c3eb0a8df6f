"""Kraken client: nonce throughput on one shared key, and the rate budget against the sandbox.

Starts a local sandbox (loopback only) and runs three measurements:

- ordered: P processes x M private calls on ONE key with nonce window 0 through
  ``kraken_private`` (Redis nonce counter + per-key sequencer). Reports calls/s and outcomes;
  the expected count of ``EAPI:Invalid nonce`` is zero.
- unordered (control): the same load with nonces from the same atomic Redis counter but sent
  without the sequencer, to show that unique increasing nonces alone are not enough.
- rate: a burst of N Balance calls from 3 processes on a pro-tier key; reports the measured rate
  against Kraken's theoretical maximum for that burst and the highest counter the sandbox saw.

It prints figures and never fails on a number. Bounded to a few minutes.

    .venv/bin/python bench/kraken_client_bench.py [--processes 8] [--calls 200] [--rate-calls 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from apps.kraken import nonce, ratelimit  # noqa: E402
from apps.kraken.client import KrakenKey, PortalSpotClient, base_url, kraken_private  # noqa: E402
from apps.kraken.errors import KrakenError  # noqa: E402
from tests.plugins.sandbox import start_sandbox, stop_sandbox  # noqa: E402


def _ordered(key: KrakenKey, method: str, params: dict[str, Any], calls: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(calls):
        try:
            kraken_private(key, method, params)
            out["ok"] += 1
        except KrakenError as exc:
            out[exc.code or type(exc).__name__] += 1
    return out


def _unordered(key: KrakenKey, method: str, params: dict[str, Any], calls: int) -> Counter[str]:
    client = PortalSpotClient(
        api_key=key.api_key,
        secret=key.secret,
        url=base_url(),
        timeout=10,
        nonce_source=lambda: nonce.next_nonce(key.api_key),
    )
    out: Counter[str] = Counter()
    for _ in range(calls):
        errors = client.request("POST", f"/0/private/{method}", params=params).json()["error"]
        out[errors[0] if errors else "ok"] += 1
    return out


def _worker(
    kind: str,
    key: KrakenKey,
    method: str,
    params: dict[str, Any],
    calls: int,
    barrier: Any,
    results: Any,
) -> None:
    barrier.wait()
    started = time.time()
    fn = _ordered if kind == "ordered" else _unordered
    outcomes = fn(key, method, params, calls)
    results.put((dict(outcomes), started, time.time()))


def run(
    kind: str, key: KrakenKey, method: str, params: dict[str, Any], processes: int, calls: int
) -> tuple[Counter[str], float]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(kind, key, method, params, calls, barrier, results))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    total: Counter[str] = Counter()
    for outcomes, _, _ in reports:
        total.update(outcomes)
    return total, max(r[2] for r in reports) - min(r[1] for r in reports)


def new_key(sb: Any, tier: str) -> KrakenKey:
    account = sb.create_account({"USD": "100000", "BTC": "2"}, tier=tier)
    api_key, secret = sb.create_key(account, nonce_window=0)
    return KrakenKey(key_id=f"bench:{account}", api_key=api_key, secret=secret, tier=tier)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate-calls", type=int, default=30)
    args = parser.parse_args()

    sb = start_sandbox()
    try:
        settings.KRAKEN_API_URL = sb.url
        method, params = "CancelAllOrdersAfter", {"timeout": 0}
        total = args.processes * args.calls
        print(f"{'mode':<10} {'calls':>6} {'seconds':>8} {'calls/s':>8}  outcomes")
        for kind in ("ordered", "unordered"):
            key = new_key(sb, "pro")
            outcomes, seconds = run(kind, key, method, params, args.processes, args.calls)
            print(
                f"{kind:<10} {total:>6} {seconds:>8.2f} {total / seconds:>8.0f}  {dict(outcomes)}",
                flush=True,
            )

        key = new_key(sb, "pro")
        peak = [0.0]
        stop = threading.Event()

        def watch() -> None:
            query = "/sandbox/limits?key=" + urllib.parse.quote(key.api_key, safe="")
            while not stop.is_set():
                peak[0] = max(peak[0], float(sb.control("GET", query)["api_counter"]))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        per = max(1, args.rate_calls // 3)
        outcomes, seconds = run("ordered", key, "Balance", {}, 3, per)
        stop.set()
        watcher.join(timeout=5)
        n = per * 3
        theoretical = ratelimit.theoretical_rate("pro", n)
        print(
            f"\nrate (pro, max 20, decay 1/s): {n} Balance calls in {seconds:.2f}s = "
            f"{n / seconds:.2f}/s; theoretical {theoretical:.2f}/s "
            f"({n / seconds / theoretical:.0%}); sandbox counter peak {peak[0]:.2f}/20; "
            f"{dict(outcomes)}"
        )
    finally:
        stop_sandbox(sb)


if __name__ == "__main__":
    main()
