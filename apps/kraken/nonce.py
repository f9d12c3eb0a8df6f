"""Nonces that are strictly increasing per API key across every process and machine, and a
per-key sequencer that makes concurrent requests *arrive* at Kraken in nonce order.

Why both are needed (FACTS §1.3, §6.1): Kraken rejects a nonce that is not greater than the last
one it accepted for the key. An atomic counter makes nonces unique and increasing, but two
requests sent at the same moment over two TCP connections can still overtake each other on the
wire, and then the lower nonce arrives second and fails (``EAPI:Invalid nonce``) whenever the
key's nonce window is 0.

Ordering choice: a per-key Redis lease ("sequencer") is held from nonce allocation until the
response has arrived, so at most one private request per key is in flight. Alternatives were
rejected: a nonce window only hides reordering (and Kraken documents it as a networking
workaround that can duplicate orders); a single sender process per key would need another
service and queue in front of every worker. One request in flight per key caps a key at
1 / round-trip (≈5-10 calls/s to the real exchange), which is still well above what Kraken's own
rate counter allows a key to sustain (≤1 call/s, FACTS §3.1), so the lease never becomes the
bottleneck. Waiters are woken in FIFO order through a Redis list (BLPOP) instead of polling,
so a released lease is handed on within a Redis round-trip. A lease that outlives its holder
(crashed worker) expires after ``ttl``.

Scale and clock: nonces are Redis ``TIME`` in units of 10 ns (seconds * 10^8, the scale used by
python-kraken-sdk), floored at ``last + 1``: all workers share Redis' clock, so a skewed worker
clock cannot push nonces backwards, and the counter survives a Redis restart because it is
re-seeded from the clock. The 10 ns scale is at least as large as the other common scales
(ms, µs), so a key previously used by such software keeps working. All arithmetic is done on
strings/64-bit integers in Redis (Lua numbers are doubles and would lose precision at 10^17).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    type RedisClient = redis.Redis[str]

# Allocate max(now_in_10ns, last + 1) atomically. Strings are compared by length then
# lexicographically, which orders positive integers without leading zeros exactly.
_NEXT_NONCE = """
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2])) .. '00'
local last = redis.call('GET', KEYS[1])
if last and (#last > #now or (#last == #now and last >= now)) then
  redis.call('INCR', KEYS[1])
  last = redis.call('GET', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return last
end
redis.call('SET', KEYS[1], now, 'EX', ARGV[1])
return now
"""

# Release the lease only if we still own it, then wake the next waiter (at most one token is
# kept so an idle key does not accumulate wake-ups).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

NONCE_TTL_SECONDS = 30 * 24 * 3600
_WAKE_TTL_MS = 10_000
_WAIT_SLICE_SECONDS = 0.05


class SequencerTimeout(Exception):
    """The key's sequencer stayed busy for longer than the caller was willing to wait."""


_local = threading.local()
_clients: dict[tuple[int, str], RedisClient] = {}
_clients_lock = threading.Lock()


def redis_client() -> RedisClient:
    """One Redis client per process (connection pools must not cross a fork)."""
    url = getattr(settings, "KRAKEN_REDIS_URL", "") or settings.REDIS_URL
    ident = (os.getpid(), url)
    client = _clients.get(ident)
    if client is None:
        with _clients_lock:
            client = _clients.get(ident)
            if client is None:
                client = redis.Redis.from_url(url, decode_responses=True)
                _clients[ident] = client
    return client


def key_ref(api_key: str) -> str:
    """Short, non-reversible id of an API key for Redis key names.

    Kraken keeps nonces and counters per *API key*, so state is keyed by the public key itself
    (two stored credentials with the same key pair must share one nonce sequence), hashed so
    Redis listings do not show it. The secret is never involved.
    """
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def lua_script(client: RedisClient, source: str) -> Any:
    cache: dict[tuple[int, str], Any] = getattr(_local, "scripts", {})
    _local.scripts = cache
    ident = (id(client), source)
    script = cache.get(ident)
    if script is None:
        script = client.register_script(source)
        cache[ident] = script
    return script


def next_nonce(api_key: str, *, client: RedisClient | None = None) -> int:
    """The next nonce for this API key: strictly greater than any nonce handed out before."""
    conn = client or redis_client()
    value = lua_script(conn, _NEXT_NONCE)(
        keys=[f"kraken:nonce:{key_ref(api_key)}"], args=[NONCE_TTL_SECONDS]
    )
    return int(cast(str, value))


@contextmanager
def sequenced(
    api_key: str, *, ttl: float, wait: float, client: RedisClient | None = None
) -> Iterator[None]:
    """Hold the key's sequencer lease: only one request per API key is in flight at a time.

    ``ttl`` bounds how long a crashed holder can block the key; it must exceed the request
    timeout. ``wait`` bounds how long to queue for the lease before SequencerTimeout.
    """
    conn = client or redis_client()
    ref = key_ref(api_key)
    lease_key = f"kraken:seq:{ref}"
    wake_key = f"kraken:seq:{ref}:wake"
    token = secrets.token_hex(8)
    ttl_ms = max(1, int(ttl * 1000))
    deadline = time.monotonic() + wait
    while not conn.set(lease_key, token, nx=True, px=ttl_ms):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SequencerTimeout("Another request on this API key is still in flight.")
        # Blocked clients are served first-come first-served. The short slice also re-checks
        # the lease so an expired lease of a crashed holder is taken over promptly.
        conn.blpop([wake_key], timeout=min(_WAIT_SLICE_SECONDS, remaining))
    try:
        yield
    finally:
        try:
            lua_script(conn, _RELEASE)(keys=[lease_key, wake_key], args=[token, _WAKE_TTL_MS])
        except redis.RedisError:
            # The request has already been answered: never turn its result into an error.
            # The lease then simply expires after ``ttl``.
            logger.warning("Kraken sequencer lease could not be released; it will expire")
