"""Worker processes for the multi-process tests.

Workers are forked from the test process (Django is already set up there, and settings such as
KRAKEN_API_URL are inherited); each one opens its own Redis and HTTP connections, because the
client keys its connection caches by process id.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any


def call_many(
    *,
    url: str,
    api_key: str,
    secret: str,
    tier: str,
    method: str,
    params: dict[str, Any],
    calls: int,
    barrier: Any,
    results: Any,
) -> None:
    """Make ``calls`` private calls on one key and report outcome counts and timings."""
    from django.conf import settings

    from apps.kraken.client import KrakenKey, kraken_private
    from apps.kraken.errors import KrakenError

    settings.KRAKEN_API_URL = url
    key = KrakenKey(key_id=f"worker:{os.getpid()}", api_key=api_key, secret=secret, tier=tier)
    outcomes: Counter[str] = Counter()
    barrier.wait()
    started = time.time()
    for _ in range(calls):
        try:
            kraken_private(key, method, params)
            outcomes["ok"] += 1
        except KrakenError as exc:
            outcomes[exc.code or type(exc).__name__] += 1
    results.put({"outcomes": dict(outcomes), "started": started, "finished": time.time()})


def run_workers(
    *,
    processes: int,
    calls: int,
    url: str,
    api_key: str,
    secret: str,
    tier: str,
    method: str,
    params: dict[str, Any],
) -> tuple[Counter[str], float]:
    """Spawn ``processes`` workers that all start together; return (outcomes, seconds)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=call_many,
            kwargs={
                "url": url,
                "api_key": api_key,
                "secret": secret,
                "tier": tier,
                "method": method,
                "params": params,
                "calls": calls,
                "barrier": barrier,
                "results": results,
            },
        )
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    reports = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    total: Counter[str] = Counter()
    for r in reports:
        total.update(r["outcomes"])
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    return total, seconds
