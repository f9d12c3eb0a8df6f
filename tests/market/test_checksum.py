"""The book checksum, checked against Kraken's documented examples and a real captured stream."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.market.checksum import book_checksum
from apps.market.feeder.book import ChecksumMismatch, OrderBook

FIXTURE = Path("/work/shared/kraken/fixtures/orderbook-v2.json")
D = Decimal


def _levels(text: str) -> list[tuple[Decimal, Decimal]]:
    return [(D(p), D(q)) for p, q in (pair.split("/") for pair in text.split())]


def test_it_matches_the_v2_worked_example_from_the_docs() -> None:
    asks = _levels(
        "45285.2/0.00100000 45286.4/1.54571953 45286.6/1.54571109 45289.6/1.54560911 "
        "45290.2/0.15890660 45291.8/1.54553491 45294.7/0.04454749 45296.1/0.35380000 "
        "45297.5/0.09945542 45299.5/0.18772827"
    )
    bids = _levels(
        "45283.5/0.10000000 45283.4/1.54582015 45282.1/0.10000000 45281.0/0.10000000 "
        "45280.3/1.54592586 45279.0/0.07990000 45277.6/0.03310103 45277.5/0.30000000 "
        "45277.3/1.54602737 45276.6/0.15445238"
    )
    assert book_checksum(asks, bids, price_decimals=1, qty_decimals=8) == 3310070434


def test_it_matches_the_v1_worked_example_from_the_docs() -> None:
    asks = [(D("0.05005") + D("0.00005") * i, D("0.00000500")) for i in range(10)]
    prices = "0.05000 0.04995 0.04990 0.04980 0.04975 0.04970 0.04965 0.04960 0.04955 0.04950"
    bids = [(D(p), D("0.00000500")) for p in prices.split()]
    assert book_checksum(asks, bids, price_decimals=5, qty_decimals=8) == 974947235


def _stream() -> dict[str, Any]:
    with FIXTURE.open() as handle:
        data: dict[str, Any] = json.load(handle, parse_float=Decimal)
    return data


@pytest.mark.skipif(not FIXTURE.exists(), reason="captured stream not available")
def test_every_message_of_the_captured_stream_verifies() -> None:
    stream = _stream()
    book = OrderBook("BTC/USD", depth=10, price_decimals=1, qty_decimals=8)
    book.apply(stream["init"]["data"][0], snapshot=True)
    for frame in stream["updates"]:
        for entry in frame["data"]:
            book.apply(entry, snapshot=False)
    assert len(stream["updates"]) == 509
    assert book.ready
    assert book.best_bid is not None
    assert book.best_ask is not None
    assert book.best_bid < book.best_ask


@pytest.mark.skipif(not FIXTURE.exists(), reason="captured stream not available")
def test_a_tampered_update_is_detected_and_the_book_marked_not_ready() -> None:
    stream = _stream()
    book = OrderBook("BTC/USD", depth=10, price_decimals=1, qty_decimals=8)
    book.apply(stream["init"]["data"][0], snapshot=True)
    tampered = copy.deepcopy(stream["updates"][0]["data"][0])
    tampered["asks"].append({"price": Decimal("29430.7"), "qty": Decimal("1.5")})
    with pytest.raises(ChecksumMismatch):
        book.apply(tampered, snapshot=False)
    assert not book.ready
