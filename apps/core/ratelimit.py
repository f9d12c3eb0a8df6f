"""Fixed-window counters in Redis, for limits per source (an address, an account).

A counter starts at the first hit and expires with its window, so a source that stops is
forgotten without a sweeper. Counters live in Redis rather than the database: a flood must cost
the portal a Redis round trip, not a row write.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

import redis

from apps.core.redis_clients import redis_client

# redis_client is re-exported: callers of the limits (the sign-in throttle, tests) use this
# module's client.
__all__ = [
    "KEY_PREFIX",
    "Window",
    "limit_key",
    "redis_client",
    "wait_text",
    "window_hit",
    "window_read",
]

logger = logging.getLogger(__name__)

# Every key of every limit starts with this, so tests (and an operator) can find them all.
KEY_PREFIX = "portal:limit:"

# Increment and start the window on the first hit, atomically; return the count and seconds left.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('TTL', KEYS[1])}
"""


def limit_key(scope: str, source: str) -> str:
    """The Redis key of `source`'s counter; hashed, so no email address is stored in Redis."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{scope}:{digest}"


def wait_text(seconds: float) -> str:
    """How long to wait, for a person: "45 seconds", "1 minute", "15 minutes"."""
    if seconds <= 90:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


@dataclass(frozen=True)
class Window:
    count: int
    seconds_left: int

    @property
    def wait(self) -> str:
        return wait_text(self.seconds_left)


def window_hit(*, scope: str, source: str, window: int) -> Window:
    """Count one event for `source` in its current window.

    Without Redis the count reads 0: the limits fail open (and say so in the log) rather than
    stopping every sign-in, since django-axes' lockout, kept in the database, still holds.
    """
    try:
        client: Any = redis_client()
        count, ttl = client.eval(_HIT, 1, limit_key(scope, source), window)
    except redis.RedisError:
        logger.exception("rate limit %s not counted: Redis is unavailable", scope)
        return Window(count=0, seconds_left=window)
    return Window(count=int(count), seconds_left=max(1, int(ttl)))


def window_read(*, scope: str, source: str) -> Window:
    """The current count for `source` (0 when its window has ended, or without Redis)."""
    key = limit_key(scope, source)
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = pipe.execute()
    except redis.RedisError:
        logger.exception("rate limit %s not read: Redis is unavailable", scope)
        return Window(count=0, seconds_left=0)
    return Window(count=int(count or 0), seconds_left=max(1, int(ttl)))
