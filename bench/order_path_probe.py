"""Start the portal server or a Celery worker for bench/order_path_bench.py, optionally timing
(BENCH_TIMING=1) `audit_record`, `order_submit` and every task into a Redis hash the bench
reads (`orderbench:timing`; one HINCRBYFLOAT per call, outside the timed span).

    python bench/order_path_probe.py server --host ... --port ...
    python bench/order_path_probe.py worker -A kraken_portal worker ...
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.test")
KEY = "orderbench:timing"


def _instrument() -> None:
    import redis
    from celery import signals

    from apps.core import trail
    from apps.trading import services

    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    def add(name: str, seconds: float) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hincrbyfloat(KEY, name, seconds)
        pipe.hincrbyfloat(KEY, f"{name}_calls", 1)
        pipe.execute()

    def timed(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                add(name, time.perf_counter() - start)

        return wrapper

    trail._recorder = timed("audit", trail._recorder)
    services.order_submit = timed("submit", services.order_submit)
    if os.environ.get("BENCH_TIMING_DETAIL") == "1":
        import importlib

        # Where the time goes, one name per stage (BENCH_TIMING_DETAIL=1; adds a Redis call each).
        for dotted in (
            "apps.trading.views.order_submit_view",
            "apps.trading.live._publish_order",
            "apps.trading.live.render_order",
            "apps.trading.live.render_open_orders",
            "apps.core.realtime._send",
            "apps.exchange.services._enqueue_send",
            "apps.exchange.services.operation_send",
            "apps.exchange.live._publish",
            "apps.exchange.live.render_card",
            "apps.trading.outcomes.order_outcome",
            "apps.trading.services.ticket_check",
            "apps.exchange.services.credential_key_for_task",
            "apps.exchange.services.kraken_private",
            "apps.exchange.services._transition",
            "apps.exchange.hooks._run",
        ):
            module_name, _, attr = dotted.rpartition(".")
            module = importlib.import_module(module_name)
            if hasattr(module, attr):
                setattr(module, attr, timed(attr, getattr(module, attr)))
    started: dict[str, float] = {}

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id: str = "", **_: Any) -> None:
        started[task_id] = time.perf_counter()

    @signals.task_postrun.connect(weak=False)
    def _postrun(task_id: str = "", **_: Any) -> None:
        if task_id in started:
            add("task", time.perf_counter() - started.pop(task_id))


def main() -> None:
    import django

    role, argv = sys.argv[1], sys.argv[2:]
    django.setup()
    if os.environ.get("BENCH_TIMING") == "1":
        _instrument()
    if role == "server":
        from kraken_portal.serve import main as serve

        serve(argv)
    else:
        from celery.__main__ import main as celery

        sys.argv = ["celery", *argv]
        celery()


if __name__ == "__main__":
    main()
