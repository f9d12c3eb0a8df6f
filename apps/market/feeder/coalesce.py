"""At most one flush per key per interval, and the last value always goes out (trailing flush).

The first change after a quiet spell is flushed almost at once (leading edge, after a `gather`
of a few milliseconds so that a burst, one exchange tick touching every pair, goes out as one
frame rather than as a first symbol now and the rest an interval later); changes inside the
interval are merged into one flush at its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Coalescer:
    def __init__(
        self,
        flush: Callable[[str], Awaitable[None]],
        *,
        interval: float = 0.25,
        gather: float = 0.01,
    ) -> None:
        self.flush = flush
        self.interval = interval
        self.gather = gather
        self._last: dict[str, float] = {}
        self._scheduled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def mark(self, key: str) -> None:
        """Record that `key` changed; its flush runs now or at the end of the current interval."""
        if key in self._scheduled:
            return  # the pending flush will read the newest state
        self._scheduled.add(key)
        delay = self._last.get(key, 0.0) + self.interval - time.monotonic()
        task = asyncio.get_running_loop().create_task(self._run(key, max(delay, self.gather)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        self._scheduled.discard(key)
        self._last[key] = time.monotonic()
        try:
            await self.flush(key)
        except Exception:
            logger.exception("market: flushing %s failed", key)

    async def drain(self) -> None:
        """Wait for every scheduled flush (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
