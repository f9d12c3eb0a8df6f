"""`manage.py streams`: the private streams (one active per deployment; others stand by)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from redis.asyncio import Redis

from apps.exchange.streams.process import StreamsProcess


class Command(BaseCommand):
    help = "Hold each Kraken account's private WebSocket (executions, balances) and record it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--lease-ttl", type=float, default=None, help="Lease TTL (s).")
        parser.add_argument("--poll", type=float, default=None, help="Key poll interval (s).")
        parser.add_argument("--tick", type=float, default=None, help="Tick hook interval (s).")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("apps.exchange").setLevel(logging.INFO)
        # Ctrl-C (make run) and SIGTERM (honcho, systemd) are the normal way to stop.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._run(options))
        self.stdout.write("streams stopped")

    async def _run(self, options: dict[str, Any]) -> None:
        main = asyncio.current_task()
        if main is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        redis = Redis.from_url(settings.REDIS_URL)
        process = StreamsProcess(
            redis=redis,
            lease_ttl=options["lease_ttl"],
            lease_poll=min(1.0, options["lease_ttl"] / 3) if options["lease_ttl"] else None,
            poll=options["poll"],
            tick=options["tick"],
        )
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await process.run_forever()
        finally:
            await redis.aclose()  # type: ignore[attr-defined]
