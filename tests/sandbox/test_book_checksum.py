"""Book checksums: an independent CRC32 implementation (written from the docs, not imported
from the sandbox) checked against the docs' worked examples, the real captured Kraken
stream, and then every book message the sandbox sends during a burst of fast trading."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT.parent / "shared" / "kraken" / "fixtures" / "orderbook-v2.json"


def _strip(s: str) -> str:
    return s.replace(".", "").lstrip("0")


def crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    text = "".join(_strip(p) + _strip(q) for p, q in asks[:10])
    text += "".join(_strip(p) + _strip(q) for p, q in bids[:10])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


class Book:
    """A client-side v2 book: apply levels, drop qty 0, truncate to depth."""

    def __init__(
        self, depth: int, price_places: int | None = None, qty_places: int | None = None
    ) -> None:
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.pp = price_places
        self.qp = qty_places

    def apply(self, data: dict[str, Any]) -> None:
        for side, book in (("bids", self.bids), ("asks", self.asks)):
            for level in data.get(side, []):
                p, q = Decimal(str(level["price"])), Decimal(str(level["qty"]))
                if q == 0:
                    book.pop(p, None)
                else:
                    book[p] = q
        for book, rev in ((self.bids, True), (self.asks, False)):
            for p in sorted(book, reverse=rev)[self.depth :]:
                del book[p]

    def _fmt(self, d: Decimal, places: int | None) -> str:
        return f"{d:.{places}f}" if places is not None else str(d)

    def checksum(self) -> int:
        asks = [
            (self._fmt(p, self.pp), self._fmt(q, self.qp))
            for p, q in sorted(self.asks.items())[:10]
        ]
        bids = [
            (self._fmt(p, self.pp), self._fmt(q, self.qp))
            for p, q in sorted(self.bids.items(), reverse=True)[:10]
        ]
        return crc(asks, bids)


def test_docs_v2_worked_example() -> None:
    asks = [
        ("45285.2", "0.00100000"),
        ("45286.4", "1.54571953"),
        ("45286.6", "1.54571109"),
        ("45289.6", "1.54560911"),
        ("45290.2", "0.15890660"),
        ("45291.8", "1.54553491"),
        ("45294.7", "0.04454749"),
        ("45296.1", "0.35380000"),
        ("45297.5", "0.09945542"),
        ("45299.5", "0.18772827"),
    ]
    bids = [
        ("45283.5", "0.10000000"),
        ("45283.4", "1.54582015"),
        ("45282.1", "0.10000000"),
        ("45281.0", "0.10000000"),
        ("45280.3", "1.54592586"),
        ("45279.0", "0.07990000"),
        ("45277.6", "0.03310103"),
        ("45277.5", "0.30000000"),
        ("45277.3", "1.54602737"),
        ("45276.6", "0.15445238"),
    ]
    assert crc(asks, bids) == 3310070434


def test_docs_v1_worked_example() -> None:
    asks = [(f"{Decimal('0.05005') + Decimal('0.00005') * i:.5f}", "0.00000500") for i in range(10)]
    bids = [
        (p, "0.00000500")
        for p in (
            "0.05000",
            "0.04995",
            "0.04990",
            "0.04980",
            "0.04975",
            "0.04970",
            "0.04965",
            "0.04960",
            "0.04955",
            "0.04950",
        )
    ]
    assert crc(asks, bids) == 974947235


def test_real_captured_stream() -> None:
    fixture = json.loads(FIXTURE.read_text())
    book = Book(depth=10, price_places=1, qty_places=8)
    init = fixture["init"]["data"][0]
    book.apply(init)
    assert book.checksum() == init["checksum"] == 2785033588
    verified = 0
    for msg in fixture["updates"]:
        for data in msg["data"]:
            book.apply(data)
            assert book.checksum() == data["checksum"]
            verified += 1
    assert verified >= 500


@pytest.fixture(scope="module")
def fast_sandbox() -> Iterator[SandboxProcess]:
    # 40x clock, 25 ms ticks: ~4 s of wall time covers well over a simulated minute.
    sb = start_sandbox(["--clock-speed", "40", "--tick-ms", "25"], seed=99)
    try:
        sb.configure(flow_rate=2.0)
        yield sb
    finally:
        stop_sandbox(sb)


async def test_sandbox_book_stream_checksums(fast_sandbox: SandboxProcess) -> None:
    sb = fast_sandbox
    acct = sb.create_account({"USD": "5000000", "XBT": "50", "ETH": "500"})
    key, secret = sb.create_key(acct)
    subs = [("BTC/USD", 10, 1), ("BTC/USD", 25, 1), ("ETH/USD", 100, 2), ("SOL/USD", 10, 2)]
    books: dict[tuple[str, int], Book] = {}
    counts = {"snapshot": 0, "update": 0}
    sim_start = sb.health()["time"]

    async def reader(symbol: str, depth: int, pd: int) -> None:
        async with websockets.connect(sb.ws_url, max_queue=None) as ws:
            await ws.send(
                json.dumps(
                    {
                        "method": "subscribe",
                        "params": {"channel": "book", "symbol": [symbol], "depth": depth},
                    }
                )
            )
            book_wire = Book(depth)  # checksum over the exact wire digits
            book_fmt = Book(depth, pd, 8)  # …and over re-formatted numbers
            books[(symbol, depth)] = book_wire
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                except TimeoutError:
                    continue
                msg = json.loads(raw, parse_float=Decimal)
                if msg.get("channel") != "book":
                    continue
                for data in msg["data"]:
                    book_wire.apply(data)
                    book_fmt.apply(data)
                    assert book_wire.checksum() == data["checksum"], (symbol, depth, msg)
                    assert book_fmt.checksum() == data["checksum"]
                    assert len(book_wire.bids) == depth
                    assert len(book_wire.asks) == depth
                    assert max(book_wire.bids) < min(book_wire.asks)
                    counts[msg["type"]] += 1

    async def trader() -> None:
        # Resting and crossing user orders make user levels appear/disappear in the book.
        for i in range(30):
            book = await asyncio.to_thread(sb.public, "Depth", pair="XBTUSD", count=3)
            best_bid = Decimal(book["result"]["XXBTZUSD"]["bids"][0][0])
            px = best_bid - Decimal(i % 5)
            out = await asyncio.to_thread(
                sb.private,
                key,
                secret,
                "AddOrder",
                {
                    "pair": "XBTUSD",
                    "type": "buy",
                    "ordertype": "limit",
                    "price": str(px),
                    "volume": "0.3",
                },
            )
            if i % 3 == 0 and out["error"] == []:
                await asyncio.to_thread(
                    sb.private, key, secret, "CancelOrder", {"txid": out["result"]["txid"][0]}
                )
            if i % 7 == 0:
                await asyncio.to_thread(
                    sb.private,
                    key,
                    secret,
                    "AddOrder",
                    {"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "0.5"},
                )
            await asyncio.sleep(0.08)

    await asyncio.gather(*(reader(s, d, p) for s, d, p in subs), trader())
    sim_elapsed = sb.health()["time"] - sim_start
    assert counts["snapshot"] == len(subs)
    assert counts["update"] > 100
    assert sim_elapsed >= 60
