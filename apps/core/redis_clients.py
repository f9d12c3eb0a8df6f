"""The kernel's Redis clients: one per process and URL, each with socket and connect timeouts.

Requests consult Redis on their way (the sign-in and reset limits, the audit flood gate). A Redis
that hangs (a full server, a network partition that drops packets) must cost such a request at
most a bounded wait and then let it fail open, never hang every sign-in with it; so every client
given out here times out connecting and reading, and retries a failed command once (a pooled
connection the server has closed), not redis-py's default three times with backoff.

A connection pool must not cross a fork (Celery's prefork workers, uvicorn's workers): clients
are kept per process id.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    type RedisClient = redis.Redis[str]

# Seconds to connect, and to wait for each answer. A healthy Redis answers in well under a
# millisecond; half a second is an outage.
REDIS_TIMEOUT = 0.5

_clients: dict[tuple[int, str], RedisClient] = {}
_clients_lock = threading.Lock()


def redis_client(url: str | None = None) -> RedisClient:
    """This process's client for `url` (default: REDIS_URL), with strings decoded."""
    url = url or settings.REDIS_URL
    ident = (os.getpid(), url)
    client = _clients.get(ident)
    if client is None:
        with _clients_lock:
            client = _clients.get(ident)
            if client is None:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    socket_timeout=REDIS_TIMEOUT,
                    socket_connect_timeout=REDIS_TIMEOUT,
                    retry=Retry(NoBackoff(), 1),
                )
                _clients[ident] = client
    return client
