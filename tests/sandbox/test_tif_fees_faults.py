"""Fill-or-kill and GTD orders (REST and WS), TradeVolume's parameters, and the trading fault
profile (lost answers after applying, 5xx before, private sockets dropped during fills),
reproducible with the seed."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import warnings
from decimal import Decimal
from typing import Any

import pytest
import websockets
from kraken.spot import User

from apps.sandbox.util import rfc3339
from tests.plugins.sandbox import SandboxProcess


class Account:
    def __init__(self, sb: SandboxProcess, balances: dict[str, str]) -> None:
        self.sb = sb
        self.id = sb.create_account(balances, tier="pro")
        self.key, self.secret = sb.create_key(self.id)

    def __call__(
        self, method: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        return self.sb.private(self.key, self.secret, method, params, **kw)

    def ok(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        out = self(method, params, **kw)
        assert out["error"] == [], out
        return out["result"]

    def order(self, txid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("QueryOrders", {"txid": txid, "trades": "true"})[txid]
        return result

    def outcome(self, method: str, params: dict[str, Any]) -> str:
        """ "ok", the Kraken error, "5xx" (Cloudflare page) or "lost" (connection dropped)."""
        try:
            out = self(method, params)
        except urllib.error.HTTPError as err:
            return f"{err.code // 100}xx"
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError):
            return "lost"
        return "ok" if out["error"] == [] else str(out["error"][0])


def touch(sb: SandboxProcess, pair: str = "XBTUSD") -> tuple[Decimal, Decimal]:
    """(best bid, best ask) from the public book."""
    book = next(iter(sb.public("Depth", pair=pair, count=1)["result"].values()))
    return Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])


@pytest.fixture
def trader(sandbox: SandboxProcess) -> Account:
    sandbox.move_price("XBTUSD", "65000")
    return Account(sandbox, {"USD": "1000000000", "XBT": "20000"})


# ---------------------------------------------------------------------- fill or kill
def test_fok_fills_entirely_or_is_cancelled_untouched(
    sandbox: SandboxProcess, trader: Account
) -> None:
    _bid, ask = touch(sandbox)
    far = str((ask * Decimal("1.005")).quantize(Decimal("0.1")))
    filled = trader.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": far,
            "volume": "0.01",
            "timeinforce": "FOK",
        },
    )["txid"][0]
    order = trader.order(filled)
    assert order["status"] == "closed"
    assert Decimal(order["vol_exec"]) == Decimal("0.01")

    # Far more than the book holds at the touch: killed, nothing traded, hold released.
    killed = trader.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": str(ask),
            "volume": "5000",
            "timeinforce": "FOK",
        },
    )["txid"][0]
    order = trader.order(killed)
    assert (order["status"], order["reason"]) == ("canceled", "Unfilled FOK order")
    assert Decimal(order["vol_exec"]) == 0
    assert "trades" not in order
    assert Decimal(trader.ok("BalanceEx")["ZUSD"]["hold_trade"]) == 0

    # A market FOK is bounded by market price protection the same way.
    market = trader.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "market",
            "volume": "5000",
            "timeinforce": "FOK",
        },
    )["txid"][0]
    assert trader.order(market)["vol_exec"] == "0.00000000"
    assert trader.order(market)["reason"] == "Unfilled FOK order"

    # Post-only can never fill at once.
    assert trader(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": "1000",
            "volume": "0.01",
            "timeinforce": "FOK",
            "oflags": "post",
        },
    )["error"] == ["EGeneral:Invalid arguments:timeinforce"]


def test_fok_counts_a_self_trade_as_no_liquidity(sandbox: SandboxProcess, trader: Account) -> None:
    bid, ask = touch(sandbox)
    own = trader.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "limit",
            "price": str(bid + Decimal("0.1")),
            "volume": "0.5",
        },
    )["txid"][0]
    try:
        txid = trader.ok(
            "AddOrder",
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": str(ask * 2),
                "volume": "0.6",
                "timeinforce": "FOK",
            },
        )["txid"][0]
        # Self-trade prevention would cancel the incoming order: a FOK is killed whole.
        assert trader.order(txid)["status"] == "canceled"
        assert trader.order(txid)["vol_exec"] == "0.00000000"
        assert trader.order(own)["status"] == "open"
    finally:
        trader("CancelAll")


async def test_ws_fok_and_gtd(sandbox: SandboxProcess, trader: Account) -> None:
    _bid, ask = touch(sandbox)
    token = trader.ok("GetWebSocketsToken")["token"]
    base = {"symbol": "BTC/USD", "side": "buy", "order_type": "limit", "token": token}
    async with websockets.connect(sandbox.ws_auth_url) as ws:
        json.loads(await ws.recv())  # status

        async def request(params: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps({"method": "add_order", "params": params}))
            while True:
                frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("method") == "add_order":
                    return frame

        killed = await request(
            {**base, "order_qty": 5000, "limit_price": float(ask), "time_in_force": "fok"}
        )
        assert killed["success"] is True, killed
        filled = await request(
            {
                **base,
                "order_qty": 0.01,
                "limit_price": float((ask * Decimal("1.005")).quantize(Decimal("0.1"))),
                "time_in_force": "fok",
            }
        )
        expires = rfc3339(sandbox.advance(0) + 120)
        gtd = await request(
            {
                **base,
                "order_qty": 0.01,
                "limit_price": 1000.0,
                "time_in_force": "gtd",
                "expire_time": expires,
            }
        )
    killed_order = trader.order(killed["result"]["order_id"])
    assert (killed_order["status"], killed_order["vol_exec"]) == ("canceled", "0.00000000")
    assert trader.order(filled["result"]["order_id"])["status"] == "closed"
    gtd_id = gtd["result"]["order_id"]
    assert trader.order(gtd_id)["status"] == "open"
    assert trader.order(gtd_id)["expiretm"] > 0
    sandbox.advance(121)
    assert trader.order(gtd_id)["status"] == "expired"


def test_gtd_needs_an_expiry(trader: Account) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "1000",
        "volume": "0.01",
    }
    assert trader("AddOrder", {**order, "timeinforce": "GTD"})["error"] == [
        "EGeneral:Invalid arguments:expiretm"
    ]
    txid = trader.ok("AddOrder", {**order, "timeinforce": "GTD", "expiretm": "+60"})["txid"][0]
    assert trader.order(txid)["status"] == "open"
    trader.sb.advance(61)
    assert trader.order(txid)["status"] == "expired"


def test_fok_in_a_batch(sandbox: SandboxProcess, trader: Account) -> None:
    _bid, ask = touch(sandbox)
    orders = [
        {
            "ordertype": "limit",
            "type": "buy",
            "price": str(ask),
            "volume": "5000",
            "timeinforce": "FOK",
        },
        {"ordertype": "limit", "type": "buy", "price": "1000", "volume": "0.01"},
    ]
    placed = trader.ok("AddOrderBatch", {"pair": "XBTUSD", "orders": orders}, as_json=True)
    first, second = (entry["txid"] for entry in placed["orders"])
    assert trader.order(first)["reason"] == "Unfilled FOK order"
    assert trader.order(second)["status"] == "open"
    trader("CancelAll")


# ---------------------------------------------------------------------- TradeVolume
def test_trade_volume_accepts_every_parameter(sandbox: SandboxProcess, trader: Account) -> None:
    # The legacy flag (krakenex/ccxt-era clients): accepted, no effect.
    out = trader.ok("TradeVolume", {"pair": "XBTUSD, ETHUSD", "fee-info": "true"})
    assert set(out["fees"]) == {"XXBTZUSD", "XETHZUSD"}
    assert set(out["fees_maker"]) == {"XXBTZUSD", "XETHZUSD"}
    assert "fees" not in trader.ok("TradeVolume", {"fee-info": "true"})
    assert trader.ok("TradeVolume", {"pair": "XBTUSD", "fee-info": "false"})["fees"]
    # rebase_multiplier and asset_class are accepted as well.
    trader.ok(
        "TradeVolume", {"pair": "XBTUSD", "rebase_multiplier": "1", "asset_class": "currency"}
    )

    schedule = trader.ok("TradeVolume", {"pair": "XBTUSD", "fee_schedule": "true"})["schedules"]
    assert schedule[0]["pair"] == "XBTUSD"
    tiers = schedule[0]["tiers"]
    assert sum(1 for tier in tiers if tier.get("active")) == 1
    assert tiers[0]["taker_fee"] == out["fees"]["XXBTZUSD"]["maxfee"]
    assert "min_spot_volume" in tiers[1]
    assert "schedules" not in trader.ok("TradeVolume", {"pair": "XBTUSD", "fee_schedule": "false"})
    assert trader("TradeVolume", {"pair": "XBTUSD", "fee_schedule": "True"})["error"] == [
        "EGeneral:Invalid arguments:fee_schedule"
    ]

    objects = trader.ok(
        "TradeVolume", {"pair": [{"asset": "XBTUSD", "aclass": "forex"}]}, as_json=True
    )
    assert set(objects["fees"]) == {"XXBTZUSD"}
    assert trader(
        "TradeVolume", {"pair": [{"asset": "PF_XBTUSD", "aclass": "derivatives"}]}, as_json=True
    )["error"] == ["EQuery:Unknown asset pair"]


def test_trade_volume_through_python_kraken_sdk(sandbox: SandboxProcess, trader: Account) -> None:
    user = User(key=trader.key, secret=trader.secret, url=sandbox.url)
    assert "XXBTZUSD" in user.get_trade_volume(pair="XBTUSD")["fees"]
    assert user.get_trade_volume(pair=["XBTUSD", "ETHUSD"], fee_schedule=True)["schedules"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert user.get_trade_volume(pair="XBTUSD", fee_info=True)["fees"]
    assert user.get_trade_volume(pair=[{"asset": "XBTUSD", "aclass": "forex"}])["fees"]


# ---------------------------------------------------------------------- faults
LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1000", "volume": "0.01"}


def test_lost_answers_are_applied_and_5xx_are_not(sandbox: SandboxProcess, trader: Account) -> None:
    try:
        sandbox.set_faults(
            [
                {
                    "kind": "lost_response",
                    "endpoint": ["AddOrder", "AmendOrder", "CancelOrder"],
                    "count": 3,
                }
            ]
        )
        assert trader.outcome("AddOrder", {**LIMIT, "cl_ord_id": "lost-1"}) == "lost"
        placed = trader.ok("OpenOrders", {"cl_ord_id": "lost-1"})["open"]
        (txid,) = placed
        assert trader.outcome("AmendOrder", {"txid": txid, "order_qty": "0.02"}) == "lost"
        assert trader.order(txid)["vol"] == "0.02000000"
        assert trader.outcome("CancelOrder", {"txid": txid}) == "lost"
        assert trader.order(txid)["status"] == "canceled"

        sandbox.set_faults(
            [
                {
                    "kind": "http_5xx",
                    "endpoint": ["AddOrder", "AmendOrder", "CancelOrder"],
                    "count": 1,
                }
            ]
        )
        assert trader.outcome("AddOrder", {**LIMIT, "cl_ord_id": "five-1"}) == "5xx"
        assert trader.ok("OpenOrders", {"cl_ord_id": "five-1"})["open"] == {}
        kept = trader.ok("AddOrder", {**LIMIT, "cl_ord_id": "five-2"})  # the rule is spent
        assert kept["txid"]
    finally:
        sandbox.clear_faults()
        trader("CancelAll")


def test_trading_profile_is_reproducible_with_the_seed(
    sandbox: SandboxProcess, trader: Account
) -> None:
    validate = {**LIMIT, "validate": "true"}

    def run(seed: int) -> list[str]:
        sandbox.set_faults(profile="trading", seed=seed)
        try:
            return [trader.outcome("AddOrder", validate) for _ in range(60)]
        finally:
            sandbox.clear_faults()

    try:
        described = sandbox.set_faults(profile="trading", seed=7)
        kinds = {rule["kind"] for rule in described["rules"]}
        assert kinds == {"http_5xx", "lost_response", "ws_drop_on_fill"}
        assert described["seed"] == 7
    finally:
        sandbox.clear_faults()
    first = run(7)
    assert run(7) == first
    assert {"ok", "5xx", "lost"} <= set(first), first
    assert run(8) != first


async def _frames_until_closed(ws: Any) -> list[dict[str, Any]]:
    """Every executions entry received until the server cuts the socket."""
    seen: list[dict[str, Any]] = []
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("channel") == "executions":
                seen.extend(frame["data"])
    except websockets.ConnectionClosed:
        return seen


async def test_private_socket_dropped_during_a_fill(
    sandbox: SandboxProcess, trader: Account
) -> None:
    _bid, ask = touch(sandbox)
    token = trader.ok("GetWebSocketsToken")["token"]
    subscribe = {
        "method": "subscribe",
        "params": {
            "channel": "executions",
            "token": token,
            "snap_trades": True,
            "snap_orders": False,
        },
    }
    crossing = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": str((ask * Decimal("1.005")).quantize(Decimal("0.1"))),
        "volume": "0.01",
    }
    try:
        sandbox.set_faults([{"kind": "ws_drop_on_fill", "count": 1}])
        async with websockets.connect(sandbox.ws_auth_url) as ws:
            await ws.send(json.dumps(subscribe))
            txid = trader.ok("AddOrder", crossing)["txid"][0]
            seen = await _frames_until_closed(ws)
            assert not any(e.get("exec_type") == "trade" for e in seen)
        # Reconnected, the fill is in the trades snapshot; the rule is spent, fills stream.
        async with websockets.connect(sandbox.ws_auth_url) as ws:
            await ws.send(json.dumps(subscribe))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("channel") == "executions" and frame.get("type") == "snapshot":
                    break
            assert txid in {entry["order_id"] for entry in frame["data"]}
            second = trader.ok("AddOrder", crossing)["txid"][0]
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                data = frame.get("data") if frame.get("channel") == "executions" else None
                if data and any(
                    e.get("order_id") == second and e.get("exec_type") == "trade" for e in data
                ):
                    break
    finally:
        sandbox.clear_faults()


async def test_ws_answer_lost_after_applying(sandbox: SandboxProcess, trader: Account) -> None:
    token = trader.ok("GetWebSocketsToken")["token"]
    params = {
        "symbol": "BTC/USD",
        "side": "buy",
        "order_type": "limit",
        "order_qty": 0.01,
        "limit_price": 1000.0,
        "cl_ord_id": "ws-lost-1",
        "token": token,
    }
    try:
        sandbox.set_faults(
            [{"kind": "lost_response", "endpoint": "add_order", "count": 1, "mode": "5xx"}]
        )
        async with websockets.connect(sandbox.ws_auth_url) as ws:
            await ws.send(json.dumps({"method": "add_order", "params": params}))
            await ws.send(json.dumps({"method": "ping", "req_id": 9}))
            answers = []
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("method") in ("add_order", "pong"):
                    answers.append(frame["method"])
                    if frame["method"] == "pong":
                        break
            assert answers == ["pong"]  # the add_order answer was lost…
        assert trader.ok("OpenOrders", {"cl_ord_id": "ws-lost-1"})["open"]  # …but applied
    finally:
        sandbox.clear_faults()
        trader("CancelAll")
