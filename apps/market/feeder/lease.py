"""One active feeder per deployment: a Redis lease taken with SET NX PX and renewed.

A second feeder stands by, retrying the SET every `poll` seconds; when the holder dies its lease
expires after `ttl` and the standby takes over, so a takeover happens within ttl + poll.
Renewal and release check the owner atomically, so a feeder that lost the lease (a long pause)
never extends or deletes its successor's.
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(
        self, redis: Redis[bytes], key: str, *, ttl: float = 3.0, poll: float = 0.5
    ) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.poll = poll
        self.owner = uuid.uuid4().hex

    async def try_acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def acquire(self) -> None:
        """Wait, standing by, until this process holds the lease."""
        while not await self.try_acquire():
            await asyncio.sleep(self.poll)

    async def renew(self) -> bool:
        result = await self.redis.eval(_RENEW, 1, self.key, self.owner, str(self.ttl_ms))  # type: ignore[no-untyped-call]
        return bool(result)

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.owner)  # type: ignore[no-untyped-call]

    async def keep(self) -> None:
        """Renew at a third of the ttl; returns (so the caller stops) once the lease is lost."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self.renew():
                    return
            except (OSError, RedisError):
                # Redis unreachable: we cannot prove we still hold the lease, so stop feeding.
                return
