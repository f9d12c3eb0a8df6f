"""Market fixtures: a clean market keyspace in this run's Redis; a live feeder on the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from redis.asyncio import Redis

from apps.market.feeder.client import Feeder
from apps.market.store import PREFIX

TEST_PAIRS = ["BTC/USD", "ETH/USD"]


def clear_market_keys() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(PREFIX + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def market_redis() -> Iterator[None]:
    clear_market_keys()
    yield
    clear_market_keys()


def make_feeder(sandbox: Any, redis_client: Redis, **kwargs: Any) -> Feeder:
    options: dict[str, Any] = {"pairs": TEST_PAIRS, "lease_ttl": 1.5, "lease_poll": 0.2}
    options.update(kwargs)
    return Feeder(
        ws_url=sandbox.ws_url,
        api_url=sandbox.url,
        redis=redis_client,
        layer=get_channel_layer(),
        **options,
    )


@pytest.fixture
async def aredis(market_redis: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def running_feeder(sandbox: Any, aredis: Redis) -> AsyncIterator[Feeder]:
    feeder = make_feeder(sandbox, aredis)
    task = asyncio.create_task(feeder.run_forever())
    yield feeder
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def eventually(check: Callable[[], Any], *, within: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


async def _feed_until_published(sandbox: Any) -> None:
    client = Redis.from_url(settings.REDIS_URL)
    feeder = make_feeder(sandbox, client)
    task = asyncio.create_task(feeder.run_forever())
    try:
        await eventually(
            lambda: (
                all(st.book.ready and st.ticker and st.candles for st in feeder.states.values())
                and len(feeder.states) == len(TEST_PAIRS)
            )
        )
        await asyncio.sleep(0.6)  # let the trailing flushes store the newest state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


@pytest.fixture
def market_data(sandbox: Any, market_redis: None) -> None:
    """Redis holds what a running feeder publishes for TEST_PAIRS (the feeder is then stopped)."""
    asyncio.run(_feed_until_published(sandbox))


@contextlib.contextmanager
def feeder_subprocess(sandbox: Any, pairs: list[str]) -> Iterator[Any]:
    """`manage.py marketfeed` for `pairs` against the sandbox, as `make run` starts it; yields
    once every pair's book has been published."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from apps.market.store import fragments_key

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
        "KRAKEN_API_URL": sandbox.url,
        "KRAKEN_WS_URL": sandbox.ws_url,
        "MARKET_PAIRS": ",".join(pairs),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "marketfeed"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        deadline = time.monotonic() + 30
        for symbol in pairs:
            ladder = "ladder-" + symbol.replace("/", "-")
            while not client.hget(fragments_key(symbol), ladder):
                assert time.monotonic() < deadline, "the feeder published nothing"
                assert process.poll() is None, "the feeder exited"
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        client.close()


@pytest.fixture
def feeder_process(sandbox: Any, market_redis: None) -> Iterator[Any]:
    """`manage.py marketfeed` against the sandbox for TEST_PAIRS, as `make run` starts it."""
    with feeder_subprocess(sandbox, TEST_PAIRS) as process:
        yield process
