"""`manage.py marketfeed`: the one market-data feeder (others stand by on the Redis lease)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand
from redis.asyncio import Redis

from apps.market.feeder.client import Feeder


def configured_pairs() -> list[str] | None:
    """MARKET_PAIRS (setting or environment), e.g. `BTC/USD,ETH/USD`; unset means every pair."""
    value = getattr(settings, "MARKET_PAIRS", None) or os.environ.get("MARKET_PAIRS", "")
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return list(value) or None


class Command(BaseCommand):
    help = "Stream Kraken WS v2 market data into Redis and to the portal's sockets."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=0.25, help="Coalescing interval (s).")

    def handle(self, *args: Any, **options: Any) -> None:
        # Ctrl-C (make run) and SIGTERM (honcho, systemd) are the normal way to stop: end
        # quietly instead of printing a KeyboardInterrupt traceback.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._run(options["interval"]))
        self.stdout.write("market feeder stopped")

    async def _run(self, interval: float) -> None:
        main = asyncio.current_task()
        if main is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        redis = Redis.from_url(settings.REDIS_URL)
        feeder = Feeder(
            ws_url=settings.KRAKEN_WS_URL,
            api_url=settings.KRAKEN_API_URL,
            redis=redis,
            layer=get_channel_layer(),
            pairs=configured_pairs(),
            interval=interval,
        )
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await feeder.run_forever()
        finally:
            await redis.aclose()  # type: ignore[attr-defined]
