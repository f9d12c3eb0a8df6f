"""`manage.py streams`: one active process per deployment holds every account's connection.

- The lease: the market feeder's (apps/market/feeder/lease.py), on its own Redis key. A second
  process stands by, retrying every `lease_poll` seconds; when the active one dies its lease
  expires after `lease_ttl` and the standby takes over (within ttl + poll), reconnecting every
  account; the snapshots and gap fills (connection.py) make the handover lose nothing. A
  process that cannot renew (Redis away, a long pause) stops its connections at once.
- Accounts: every STREAMS_POLL_SECONDS the process reads each account's designated read key
  (apps.exchange.credentials.read_credentials) and starts a connection for an account that
  gained one, stops the connection of an account whose key was revoked or whose account was
  archived, and restarts it when the designated key changed. No restart needed.
- Ticks: every STREAMS_TICK_SECONDS, the tick hooks (hooks.py) run for each account whose
  connection is up.
- Status: STATUS_KEY (a Redis hash) says which process is active and each account's
  connection state, for the status page and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connections
from redis.asyncio import Redis

from apps.exchange.credentials import read_credentials
from apps.exchange.streams.connection import AccountStream, orm_job
from apps.exchange.streams.hooks import tick_hooks_run
from apps.market.feeder.lease import Lease
from apps.orgs.models import KrakenAccount

logger = logging.getLogger(__name__)

LEASE_KEY = "exchange:streams:lease"
STATUS_KEY = "exchange:streams"
PROCESS_KEY = "exchange:streams:process"  # + ":<owner>": each process's own state and pid


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _read_keys() -> dict[int, int]:
    """{account id: credential id} of every account's designated read key."""
    return {account_id: c.pk for account_id, c in read_credentials().items()}


def close_thread_connections(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close the database connection each of the executor's threads holds (a barrier makes
    every thread take one job), so nothing is left connected when the process stops."""
    barrier = threading.Barrier(threads, timeout=5)

    def close() -> None:
        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    futures = [executor.submit(close) for _ in range(threads)]
    for future in futures:
        with contextlib.suppress(Exception):
            future.result(timeout=10)


def _tick(account_id: int) -> None:
    account = KrakenAccount.objects.select_related("org").filter(pk=account_id).first()
    if account is not None:
        tick_hooks_run(account)


class StreamsProcess:
    def __init__(
        self,
        *,
        redis: Redis[bytes],
        ws_url: str | None = None,
        lease_key: str = LEASE_KEY,
        lease_ttl: float | None = None,
        lease_poll: float | None = None,
        poll: float | None = None,
        tick: float | None = None,
    ) -> None:
        self.redis = redis
        self.ws_url = ws_url or settings.KRAKEN_WS_AUTH_URL
        self.lease = Lease(
            redis,
            lease_key,
            ttl=lease_ttl if lease_ttl is not None else _setting("STREAMS_LEASE_TTL", 5),
            poll=lease_poll if lease_poll is not None else _setting("STREAMS_LEASE_POLL", 1),
        )
        self.poll = poll if poll is not None else _setting("STREAMS_POLL_SECONDS", 3)
        self.tick = tick if tick is not None else _setting("STREAMS_TICK_SECONDS", 5)
        self.state = "standby"
        self.streams: dict[int, AccountStream] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.threads = threads = int(_setting("STREAMS_DB_THREADS", 4))
        self.db = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="streams-db")
        self.rest = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="streams-rest")
        self.active = asyncio.Event()

    async def _thread[T](self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db, partial(orm_job, fn, *args))

    # -- lifecycle ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        status = asyncio.create_task(self._report_status())
        try:
            while True:
                self.state = "standby"
                await self.lease.acquire()
                logger.info("streams %s holds the lease", self.lease.owner[:8])
                self.state = "active"
                self.active.set()
                keeper = asyncio.create_task(self.lease.keep())
                work = asyncio.create_task(self._hold_accounts())
                ticks = asyncio.create_task(self._ticks())
                try:
                    await asyncio.wait({keeper, work}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (keeper, work):
                        if task.done() and not task.cancelled() and task.exception():
                            logger.error("streams task failed", exc_info=task.exception())
                finally:
                    self.active.clear()
                    for task in (keeper, work, ticks):
                        task.cancel()
                    await asyncio.gather(keeper, work, ticks, return_exceptions=True)
                    await self._stop_all()
                logger.warning("streams lost the lease; standing by")
        finally:
            status.cancel()
            await self._stop_all()
            with contextlib.suppress(Exception):
                await self.lease.release()
            with contextlib.suppress(Exception):
                await self.redis.delete(self._own_key())
            for executor in (self.db, self.rest):
                await asyncio.get_running_loop().run_in_executor(
                    None, close_thread_connections, executor, self.threads
                )
                executor.shutdown(wait=False, cancel_futures=True)

    async def _hold_accounts(self) -> None:
        while True:
            try:
                wanted = await self._thread(_read_keys)
            except Exception:
                logger.exception("streams: the designated keys could not be read")
            else:
                await self._reconcile(wanted)
            await asyncio.sleep(self.poll)

    async def _reconcile(self, wanted: dict[int, int]) -> None:
        for account_id in list(self.tasks):
            stream = self.streams[account_id]
            gone = account_id not in wanted or wanted[account_id] != stream.credential_id
            if gone or self.tasks[account_id].done():
                await self._stop(account_id)
        for account_id, credential_id in wanted.items():
            if account_id in self.tasks:
                continue
            stream = AccountStream(
                account_id=account_id,
                credential_id=credential_id,
                ws_url=self.ws_url,
                db=self.db,
                rest=self.rest,
                redis=self.redis,
            )
            self.streams[account_id] = stream
            self.tasks[account_id] = asyncio.create_task(stream.run())
            logger.info("streams: account %s connects with key %s", account_id, credential_id)

    async def _stop(self, account_id: int) -> None:
        task = self.tasks.pop(account_id, None)
        self.streams.pop(account_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            logger.info("streams: account %s disconnected", account_id)

    async def _stop_all(self) -> None:
        for account_id in list(self.tasks):
            await self._stop(account_id)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            for account_id, stream in list(self.streams.items()):
                if not stream.subscribed.is_set():
                    continue
                try:
                    await self._thread(_tick, account_id)
                except Exception:
                    logger.exception("streams: tick for account %s failed", account_id)

    # -- status -------------------------------------------------------------------------------

    def _own_key(self) -> str:
        return f"{PROCESS_KEY}:{self.lease.owner}"

    def accounts_status(self) -> dict[str, Any]:
        return {str(a): s.status.as_json() for a, s in sorted(self.streams.items())}

    async def _report_status(self) -> None:
        while True:
            try:
                now = repr(time.time())
                await self.redis.hset(
                    self._own_key(),
                    mapping={"state": self.state, "updated_at": now, "pid": str(os.getpid())},
                )
                await self.redis.expire(self._own_key(), 10)
                if self.state == "active":
                    await self.redis.hset(
                        STATUS_KEY,
                        mapping={
                            "owner": self.lease.owner,
                            "state": self.state,
                            "updated_at": now,
                            "accounts": json.dumps(self.accounts_status()),
                        },
                    )
            except Exception:
                logger.warning("streams status not recorded", exc_info=True)
            await asyncio.sleep(1)
