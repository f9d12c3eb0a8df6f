"""Coalescing: at most one flush per interval per key, and the last value always arrives."""

from __future__ import annotations

import asyncio

from apps.market.feeder.coalesce import Coalescer


async def test_a_burst_of_changes_is_flushed_a_few_times_and_the_last_value_arrives() -> None:
    value = 0
    delivered: list[int] = []

    async def flush(key: str) -> None:
        delivered.append(value)

    coalescer = Coalescer(flush, interval=0.2)
    for value in range(1, 51):  # noqa: B007 - `flush` reads the newest value.
        coalescer.mark("BTC/USD")
        await asyncio.sleep(0.001)
    await coalescer.drain()
    assert delivered[0] < 50  # the first flush went out during the burst (leading edge)
    assert delivered[-1] == 50  # and the newest one follows (trailing flush)
    assert len(delivered) <= 3  # 50 changes in about 60 ms: not 50 frames


async def test_keys_are_coalesced_independently() -> None:
    delivered: list[str] = []

    async def flush(key: str) -> None:
        delivered.append(key)

    coalescer = Coalescer(flush, interval=0.2)
    for _ in range(10):
        coalescer.mark("BTC/USD")
        coalescer.mark("ETH/USD")
    await coalescer.drain()
    assert sorted(delivered) == ["BTC/USD", "ETH/USD"]
