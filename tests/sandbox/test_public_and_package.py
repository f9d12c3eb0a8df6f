"""Public market data semantics, seed determinism, pagination and package isolation."""

from __future__ import annotations

import ast
import asyncio
import json
from decimal import Decimal
from pathlib import Path

import websockets

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox

PACKAGE = Path(__file__).resolve().parents[2] / "apps" / "sandbox"

EXPECTED_PAIRS = {
    "XXBTZUSD": ("XBTUSD", "XBT/USD"),
    "XETHZUSD": ("ETHUSD", "ETH/USD"),
    "SOLUSD": ("SOLUSD", "SOL/USD"),
    "XXBTZEUR": ("XBTEUR", "XBT/EUR"),
    "XETHXXBT": ("ETHXBT", "ETH/XBT"),
    "USDTZUSD": ("USDTUSD", "USDT/USD"),
    "USDCUSD": ("USDCUSD", "USDC/USD"),
    "ZEURZUSD": ("EURUSD", "EUR/USD"),
    "DOTUSD": ("DOTUSD", "DOT/USD"),
    "ADAUSD": ("ADAUSD", "ADA/USD"),
    "XXRPZUSD": ("XRPUSD", "XRP/USD"),
    "XLTCZUSD": ("LTCUSD", "LTC/USD"),
}


def test_asset_pairs_reference_data(sandbox: SandboxProcess) -> None:
    pairs = sandbox.public("AssetPairs")["result"]
    assert {k: (v["altname"], v["wsname"]) for k, v in pairs.items()} == EXPECTED_PAIRS
    xbt = pairs["XXBTZUSD"]
    assert (xbt["pair_decimals"], xbt["lot_decimals"], xbt["tick_size"]) == (1, 8, "0.1")
    assert xbt["fees"][0] == [0, 0.4]


def test_pair_name_spellings_give_canonical_keys(sandbox: SandboxProcess) -> None:
    for name in ("XXBTZUSD", "XBTUSD", "BTC/USD", "XBT/USD", "btcusd"):
        assert list(sandbox.public("Ticker", pair=name)["result"]) == ["XXBTZUSD"], name
    both = sandbox.public("Ticker", pair="ETH/BTC,EURUSD")["result"]
    assert set(both) == {"XETHXXBT", "ZEURZUSD"}
    assert len(sandbox.public("Ticker")["result"]) == 12


def test_ohlc_trades_spread_depth(sandbox: SandboxProcess) -> None:
    one = sandbox.public("OHLC", pair="XBTUSD")["result"]
    hour = sandbox.public("OHLC", pair="XBTUSD", interval=60)["result"]
    assert 700 <= len(one["XXBTZUSD"]) <= 720  # "up to 720 of the most recent entries"
    assert 12 <= len(hour["XXBTZUSD"]) <= 720  # other tests may fast-forward the clock
    row = one["XXBTZUSD"][-1]
    assert Decimal(row[3]) <= Decimal(row[1]) <= Decimal(row[2])  # low <= open <= high
    since = one["XXBTZUSD"][-10][0]
    recent = sandbox.public("OHLC", pair="XBTUSD", since=since)["result"]["XXBTZUSD"]
    assert all(r[0] > since for r in recent)
    assert len(recent) <= 10  # a new minute may open between the two calls

    trades = sandbox.public("Trades", pair="XBTUSD", count=5)["result"]
    assert len(trades["XXBTZUSD"]) == 5
    cursor = trades["last"]
    newer = sandbox.public("Trades", pair="XBTUSD", since=cursor)["result"]["XXBTZUSD"]
    # The cursor is a trade id, not a time: a trade in the same tick as the last one shares its
    # timestamp, so newer trades are at or after it.
    assert all(t[2] >= trades["XXBTZUSD"][-1][2] for t in newer)

    depth = sandbox.public("Depth", pair="ETHUSD", count=7)["result"]["XETHZUSD"]
    assert len(depth["bids"]) == len(depth["asks"]) == 7
    bids = [Decimal(b[0]) for b in depth["bids"]]
    asks = [Decimal(a[0]) for a in depth["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    assert sandbox.public("Spread", pair="XBTUSD")["result"]["XXBTZUSD"]
    assert sandbox.public("Depth", pair="XBTUSD", count=501)["error"] == [
        "EGeneral:Invalid arguments:count"
    ]


def test_same_seed_same_start() -> None:
    # A very long tick interval: no ticks run, so we compare pure start-up state.
    a = start_sandbox(["--tick-ms", "600000"], seed=31337)
    b = start_sandbox(["--tick-ms", "600000"], seed=31337)
    c = start_sandbox(["--tick-ms", "600000"], seed=31338)
    try:

        def snap(sb: SandboxProcess) -> tuple[object, object]:
            # Drop wall-clock stamps; prices, sizes and history come from the seed.
            book = sb.public("Depth", pair="SOLUSD", count=20)["result"]["SOLUSD"]
            ohlc = sb.public("OHLC", pair="XBTUSD")["result"]["XXBTZUSD"]
            return ([lvl[:2] for lvl in book["bids"] + book["asks"]], [r[1:] for r in ohlc])

        assert snap(a) == snap(b)
        assert snap(a) != snap(c)
    finally:
        for sb in (a, b, c):
            stop_sandbox(sb)


def test_closed_orders_paginate_by_50(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "1000000"}, tier="pro")
    key, secret = sandbox.create_key(acct)
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "1000",
        "volume": "0.001",
    }
    for i in range(60):
        if i % 20 == 0:
            sandbox.advance(60)
        txid = sandbox.private(key, secret, "AddOrder", order)["result"]["txid"][0]
        sandbox.private(key, secret, "CancelOrder", {"txid": txid})
    sandbox.advance(60)
    first = sandbox.private(key, secret, "ClosedOrders")["result"]
    second = sandbox.private(key, secret, "ClosedOrders", {"ofs": "50"})["result"]
    assert (first["count"], len(first["closed"])) == (60, 50)
    assert (second["count"], len(second["closed"])) == (60, 10)
    assert not set(first["closed"]) & set(second["closed"])


async def test_status_change_is_pushed_over_ws(sandbox: SandboxProcess) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        first = json.loads(await ws.recv())
        assert first["data"][0]["system"] == "online"
        try:
            await asyncio.to_thread(sandbox.set_status, "post_only")
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg.get("channel") == "status":
                    assert msg["data"][0]["system"] == "post_only"
                    break
        finally:
            await asyncio.to_thread(sandbox.set_status, "online")


def test_package_imports_nothing_from_the_portal() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        management = "management" in path.parts
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not (name.startswith("apps.") and not name.startswith("apps.sandbox")), (
                    path,
                    name,
                )
                assert not name.startswith("kraken_portal"), (path, name)
                if name.startswith("django"):
                    assert management, (path, name)


def test_management_command_parses_the_same_flags() -> None:
    from apps.sandbox.cli import config_from
    from apps.sandbox.management.commands.sandbox import Command

    parser = Command().create_parser("manage.py", "sandbox")
    ns = parser.parse_args(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "9999",
            "--seed",
            "5",
            "--tier",
            "starter",
            "--state",
            "x.json",
            "--faults",
            "flaky",
            "--admin-token",
            "t",
        ]
    )
    cfg = config_from(ns)
    assert (cfg.port, cfg.seed, cfg.tier, cfg.state_file, cfg.faults, cfg.admin_token) == (
        9999,
        5,
        "starter",
        "x.json",
        "flaky",
        "t",
    )
