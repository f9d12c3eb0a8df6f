"""Exchange behaviour: order types, holds, fees, timers, modes, faults and persistence."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox


class Account:
    def __init__(self, sb: SandboxProcess, balances: dict[str, str], tier: str = "pro") -> None:
        self.sb = sb
        self.id = sb.create_account(balances, tier=tier)
        self.key, self.secret = sb.create_key(self.id)

    def __call__(
        self, method: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        out = self.sb.private(self.key, self.secret, method, params, **kw)
        return out

    def ok(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        out = self(method, params, **kw)
        assert out["error"] == [], out
        return out["result"]

    def order(self, txid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("QueryOrders", {"txid": txid, "trades": "true"})[txid]
        return result

    def bal(self, asset: str) -> Decimal:
        return Decimal(self.ok("Balance").get(asset, "0"))

    def hold(self, asset: str) -> Decimal:
        return Decimal(self.ok("BalanceEx").get(asset, {}).get("hold_trade", "0"))


def mid(sb: SandboxProcess, pair: str = "XBTUSD") -> Decimal:
    book = sb.public("Depth", pair=pair, count=1)["result"]
    data = next(iter(book.values()))
    return (Decimal(data["bids"][0][0]) + Decimal(data["asks"][0][0])) / 2


@pytest.fixture
def acct(sandbox: SandboxProcess) -> Iterator[Account]:
    sandbox.move_price("XBTUSD", "65000")
    a = Account(sandbox, {"USD": "1000000", "XBT": "20"})
    yield a
    a("CancelAll")


def test_limit_order_holds_and_maker_fill(sandbox: SandboxProcess, acct: Account) -> None:
    txid = acct.ok(
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "60000", "volume": "1"},
    )["txid"][0]
    # Hold = cost + worst-case fee (0.26% taker at tier 0 → 60000 * 1.0040).
    assert acct.hold("ZUSD") == Decimal("60240.0000")
    sandbox.move_price("XBTUSD", "59000")
    o = acct.order(txid)
    assert o["status"] == "closed"
    assert o["vol_exec"] == "1.00000000"
    assert o["price"] == "60000.0"
    trade = acct.ok("QueryTrades", {"txid": o["trades"][0]})[o["trades"][0]]
    assert trade["maker"] is True
    assert trade["fee"] == "150.0000"  # 0.25% maker
    assert acct.hold("ZUSD") == 0
    assert acct.bal("XXBT") == Decimal("21")
    assert acct.bal("ZUSD") == Decimal("1000000") - Decimal("60000") - Decimal("150")


def test_post_only_ioc_and_market(sandbox: SandboxProcess, acct: Account) -> None:
    m = mid(sandbox)
    cross = str((m + 500).quantize(Decimal("0.1")))
    txid = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": cross,
            "volume": "0.01",
            "oflags": "post",
        },
    )["txid"][0]
    o = acct.order(txid)
    assert (o["status"], o["reason"]) == ("canceled", "Post only order")
    far = str((m - 5000).quantize(Decimal("0.1")))
    txid = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": far,
            "volume": "0.01",
            "timeinforce": "IOC",
        },
    )["txid"][0]
    assert acct.order(txid)["status"] == "canceled"
    txid = acct.ok(
        "AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "0.5"}
    )["txid"][0]
    o = acct.order(txid)
    assert o["status"] == "closed"
    assert Decimal(o["cost"]) > 0
    # viqc: buy for 1000 USD of quote.
    txid = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "market",
            "volume": "1000",
            "oflags": "viqc",
        },
    )["txid"][0]
    o = acct.order(txid)
    assert Decimal(o["cost"]) <= Decimal("1000")
    assert Decimal(o["cost"]) > Decimal("999")


def test_stop_loss_take_profit_trailing(sandbox: SandboxProcess, acct: Account) -> None:
    sl = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "stop-loss",
            "price": "60000",
            "volume": "0.1",
        },
    )["txid"][0]
    tp = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "take-profit",
            "price": "70000",
            "volume": "0.1",
        },
    )["txid"][0]
    ts = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "trailing-stop",
            "price": "+1000",
            "volume": "0.1",
        },
    )["txid"][0]
    sll = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "stop-loss-limit",
            "price": "71000",
            "price2": "72600",
            "volume": "0.1",
        },
    )["txid"][0]
    assert {acct.order(t)["status"] for t in (sl, tp, ts, sll)} == {"open"}
    sandbox.move_price("XBTUSD", "72000")  # take-profit + buy stop-loss-limit fire
    assert acct.order(tp)["status"] == "closed"
    assert "touched" in acct.order(tp)["misc"]
    assert acct.order(sll)["status"] == "closed"
    assert acct.order(sl)["status"] == "open"
    assert acct.order(ts)["status"] == "open"  # trail follows the peak up to 72000
    sandbox.move_price("XBTUSD", "70900")  # trailing (72000-1000=71000) fires
    assert acct.order(ts)["status"] == "closed"
    assert acct.order(sl)["status"] == "open"
    sandbox.move_price("XBTUSD", "59000")
    assert acct.order(sl)["status"] == "closed"
    assert "stopped" in acct.order(sl)["misc"]


def test_iceberg_display_and_conditional_close(sandbox: SandboxProcess, acct: Account) -> None:
    txid = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "iceberg",
            "price": "90000",
            "volume": "3",
            "displayvol": "0.5",
        },
    )["txid"][0]
    asks = sandbox.public("Depth", pair="XBTUSD", count=500)["result"]["XXBTZUSD"]["asks"]
    level = [a for a in asks if a[0] == "90000.0"]
    assert level
    assert Decimal(level[0][1]) < Decimal("3")  # only the display part is public
    acct.ok("CancelOrder", {"txid": txid})
    parent = acct.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": "64000",
            "volume": "0.2",
            "close[ordertype]": "limit",
            "close[price]": "80000",
        },
    )["txid"][0]
    sandbox.move_price("XBTUSD", "63000")
    assert acct.order(parent)["status"] == "closed"
    children = [o for o in acct.ok("OpenOrders")["open"].values() if o["refid"] == parent]
    assert len(children) == 1
    assert children[0]["descr"]["order"] == "sell 0.20000000 XBTUSD @ limit 80000.0"


def test_client_ids_amend_edit_batch(sandbox: SandboxProcess, acct: Account) -> None:
    base = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "50000",
        "volume": "0.1",
    }
    acct.ok("AddOrder", {**base, "cl_ord_id": "desk-1"})
    assert acct("AddOrder", {**base, "cl_ord_id": "desk-1"})["error"] == [
        "EOrder:Duplicate cl_ord_id"
    ]
    open_ = acct.ok("OpenOrders", {"cl_ord_id": "desk-1"})["open"]
    assert len(open_) == 1
    acct.ok("AmendOrder", {"cl_ord_id": "desk-1", "order_qty": "0.2"})
    (txid,) = open_
    assert acct.order(txid)["vol"] == "0.20000000"
    amends = acct.ok("OrderAmends", {"order_id": txid})
    assert amends["count"] == 2
    assert acct.ok("CancelOrder", {"cl_ord_id": "desk-1"})["count"] == 1
    for _ in range(3):
        acct.ok("AddOrder", {**base, "userref": "77"})
    assert acct.ok("CancelOrder", {"txid": "77"})["count"] == 3
    old = acct.ok("AddOrder", base)["txid"][0]
    edited = acct.ok("EditOrder", {"txid": old, "pair": "XBTUSD", "price": "51000"})
    assert edited["originaltxid"] == old
    assert acct.order(old)["status"] == "canceled"
    assert acct.order(edited["txid"])["descr"]["price"] == "51000.0"
    # AddOrderBatch needs JSON; form bodies get Kraken's error.
    batch = {"pair": "XBTUSD", "orders": [{**base, "pair": None}, base]}
    for o in batch["orders"]:
        o.pop("pair")
    assert acct("AddOrderBatch", {"pair": "XBTUSD", "orders": "x"})["error"] == [
        "EGeneral:Invalid arguments:orders"
    ]
    res = acct.ok("AddOrderBatch", batch, as_json=True)
    assert [("txid" in o) for o in res["orders"]] == [True, True]
    ids = [o["txid"] for o in res["orders"]]
    assert acct.ok("CancelOrderBatch", {"orders": ids}, as_json=True)["count"] == 2


def test_timers_gtd_starttm_dead_man_switch(sandbox: SandboxProcess, acct: Account) -> None:
    base = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "40000",
        "volume": "0.1",
    }
    gtd = acct.ok("AddOrder", {**base, "timeinforce": "GTD", "expiretm": "+60"})["txid"][0]
    later = acct.ok("AddOrder", {**base, "starttm": "+30"})["txid"][0]
    assert acct.order(later)["status"] == "pending"
    keep = acct.ok("AddOrder", base)["txid"][0]
    sandbox.advance(31)
    assert acct.order(later)["status"] == "open"
    sandbox.advance(30)
    assert acct.order(gtd)["status"] == "expired"
    res = acct.ok("CancelAllOrdersAfter", {"timeout": "60"})
    assert res["triggerTime"] > res["currentTime"]
    sandbox.advance(30)
    assert acct.order(keep)["status"] == "open"
    sandbox.advance(31)
    assert acct.order(keep)["status"] == "canceled"
    assert acct.order(later)["status"] == "canceled"


def test_system_status_modes(sandbox: SandboxProcess, acct: Account) -> None:
    base = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "40000",
        "volume": "0.1",
    }
    txid = acct.ok("AddOrder", base)["txid"][0]
    try:
        sandbox.set_status("cancel_only")
        assert sandbox.public("SystemStatus")["result"]["status"] == "cancel_only"
        assert acct("AddOrder", base)["error"] == ["EService:Market in cancel_only mode"]
        sandbox.set_status("post_only")
        assert acct("AddOrder", base)["error"] == ["EService:Market in post_only mode"]
        assert acct("AddOrder", {**base, "oflags": "post"})["error"] == []
        sandbox.set_status("maintenance")
        assert acct("AddOrder", base)["error"] == ["EService:Unavailable"]
        assert acct("CancelOrder", {"txid": txid})["error"] == ["EService:Unavailable"]
    finally:
        sandbox.set_status("online")
    assert acct.ok("CancelOrder", {"txid": txid})["count"] == 1


def _raw_post(
    sb: SandboxProcess, acct: Account, method: str, params: dict[str, Any]
) -> tuple[int, str]:
    import base64
    import hashlib
    import hmac
    import urllib.parse

    data = {**params, "nonce": sb.next_nonce()}
    body = urllib.parse.urlencode(data)
    path = f"/0/private/{method}"
    digest = hashlib.sha256((str(data["nonce"]) + body).encode()).digest()
    sig = base64.b64encode(
        hmac.new(base64.b64decode(acct.secret), path.encode() + digest, hashlib.sha512).digest()
    ).decode()
    req = urllib.request.Request(  # noqa: S310 - local test server
        sb.url + path,
        data=body.encode(),
        method="POST",
        headers={"API-Key": acct.key, "API-Sign": sig},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local server
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_faults(sandbox: SandboxProcess, acct: Account) -> None:
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "40000",
        "volume": "0.1",
        "userref": "4242",
    }
    try:
        sandbox.set_faults([{"kind": "http_5xx", "endpoint": "Balance", "status": 502, "count": 1}])
        status, body = _raw_post(sandbox, acct, "Balance", {})
        assert status == 502
        assert "cloudflare" in body
        assert "<html>" in body
        assert acct("Balance")["error"] == []  # count exhausted
        sandbox.set_faults(
            [
                {"kind": "unavailable", "endpoint": "private", "count": 1},
                {"kind": "busy", "endpoint": "BalanceEx"},
            ]
        )
        assert acct("Balance") == {"error": ["EService:Unavailable"]}
        assert acct("BalanceEx") == {"error": ["EService:Busy"]}
        # Lost response: the order IS placed, the client sees a dropped connection.
        sandbox.set_faults(
            [{"kind": "lost_response", "endpoint": "AddOrder", "count": 1, "mode": "drop"}]
        )
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            acct("AddOrder", order)
        sandbox.set_faults(
            [
                {
                    "kind": "lost_response",
                    "endpoint": "AddOrder",
                    "count": 1,
                    "mode": "5xx",
                    "status": 520,
                }
            ]
        )
        status, _ = _raw_post(sandbox, acct, "AddOrder", order)
        assert status == 520
        sandbox.clear_faults()
        placed = acct.ok("OpenOrders", {"userref": "4242"})["open"]
        assert len(placed) == 2  # both "lost" orders were applied — reconcile by userref
        sandbox.set_faults([{"kind": "latency", "latency_ms": 300, "endpoint": "Time"}])
        import time

        t0 = time.monotonic()
        sandbox.public("Time")
        assert time.monotonic() - t0 >= 0.3
    finally:
        sandbox.clear_faults()


async def test_ws_public_protocol(sandbox: SandboxProcess) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        status = json.loads(await ws.recv())
        assert status["channel"] == "status"
        assert status["data"][0]["api_version"] == "v2"
        await ws.send(json.dumps({"method": "ping", "req_id": 101}))
        await ws.send(
            json.dumps(
                {
                    "method": "subscribe",
                    "req_id": 7,
                    "params": {"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD", "NOPE/USD"]},
                }
            )
        )
        await ws.send(
            json.dumps(
                {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}
            )
        )
        await ws.send(
            json.dumps(
                {
                    "method": "subscribe",
                    "params": {"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 5},
                }
            )
        )
        await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "instrument"}}))
        await ws.send(
            json.dumps(
                {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}}
            )
        )
        seen: list[dict[str, Any]] = []
        while len(seen) < 60:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            if any(m.get("channel") == "heartbeat" for m in seen):
                break
    pong = next(m for m in seen if m.get("method") == "pong")
    assert pong["req_id"] == 101
    acks = [m for m in seen if m.get("method") == "subscribe" and m.get("req_id") == 7]
    assert [a["success"] for a in acks] == [True, True, False]
    assert acks[2]["error"] == "Currency pair not supported NOPE/USD"
    chans = {(m.get("channel"), m.get("type")) for m in seen}
    assert {
        ("ticker", "snapshot"),
        ("trade", "snapshot"),
        ("ohlc", "snapshot"),
        ("instrument", "snapshot"),
    } <= chans
    unsub = next(m for m in seen if m.get("method") == "unsubscribe")
    assert unsub["error"] == "Subscription Not Found"


async def _drain(ws: Any) -> None:
    for _ in range(100):
        await asyncio.wait_for(ws.recv(), 5)


async def test_ws_forced_disconnect(sandbox: SandboxProcess) -> None:
    sandbox.set_faults([], ws_disconnect_every=1)
    try:
        async with websockets.connect(sandbox.ws_url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await _drain(ws)
    finally:
        sandbox.clear_faults()


async def test_ws_private_requires_valid_token(sandbox: SandboxProcess, acct: Account) -> None:
    token = acct.ok("GetWebSocketsToken")["token"]
    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.recv()
        await ws.send(
            json.dumps(
                {"method": "subscribe", "params": {"channel": "executions", "token": "bogus"}}
            )
        )
        bad = json.loads(await ws.recv())
        assert (bad["success"], bad["error"]) == (False, "EAPI:Invalid token")
        await ws.send(
            json.dumps(
                {
                    "method": "subscribe",
                    "params": {"channel": "executions", "token": token, "snap_trades": True},
                }
            )
        )
        ack = json.loads(await ws.recv())
        assert ack["success"] is True
        snap = json.loads(await ws.recv())
        assert (snap["channel"], snap["type"], snap["sequence"]) == ("executions", "snapshot", 1)
    sandbox.advance(901)  # unused tokens expire after 15 minutes
    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.recv()
        fresh = acct.ok("GetWebSocketsToken")["token"]
        await ws.send(
            json.dumps({"method": "subscribe", "params": {"channel": "balances", "token": token}})
        )
        assert json.loads(await ws.recv())["error"] == "EAPI:Invalid token"
        await ws.send(
            json.dumps({"method": "subscribe", "params": {"channel": "balances", "token": fresh}})
        )
        assert json.loads(await ws.recv())["success"] is True
        snap = json.loads(await ws.recv())
        assert {b["asset"] for b in snap["data"]} >= {"USD", "BTC"}


def test_subaccounts_and_transfers(sandbox: SandboxProcess, acct: Account) -> None:
    assert acct.ok("CreateSubaccount", {"username": "desk-a", "email": "a@example.test"})
    sub = sandbox.create_subaccount(acct.id, "desk-b")
    res = acct.ok("AccountTransfer", {"asset": "XBT", "amount": "1", "from": acct.id, "to": sub})
    assert res["status"] == "complete"
    assert sandbox.account(sub)["balances"]["XXBT"] == "1.0000000000"
    ref = acct.ok(
        "WalletTransfer",
        {"asset": "XBT", "from": "Spot Wallet", "to": "Futures Wallet", "amount": "0.5"},
    )["refid"]
    assert ref


def test_withdraw_cancel_and_failure(sandbox: SandboxProcess, acct: Account) -> None:
    sandbox.add_withdraw_address(acct.id, "XBT", "hot", "bc1qhotwallet0000000000000000000000")
    sandbox.add_withdraw_address(acct.id, "XBT", "fail-me", "bc1qfailwallet000000000000000000000")
    before = acct.bal("XXBT")
    ref = acct.ok("Withdraw", {"asset": "XBT", "key": "hot", "amount": "1"})["refid"]
    assert acct.bal("XXBT") == before - 1
    assert acct.ok("WithdrawCancel", {"asset": "XBT", "refid": ref}) is True
    assert acct.bal("XXBT") == before
    ref2 = acct.ok("Withdraw", {"asset": "XBT", "key": "fail-me", "amount": "1"})["refid"]
    sandbox.advance(6)
    assert acct.ok("WithdrawCancel", {"asset": "XBT", "refid": ref2}) is False
    sandbox.advance(60)
    status = {w["refid"]: w for w in acct.ok("WithdrawStatus", {"asset": "XBT"})}
    assert status[ref2]["status"] == "Failure"
    assert status[ref]["status-prop"] == "canceled"
    assert acct.bal("XXBT") == before  # failed withdrawal refunded


def test_earn_busy_and_minimum(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"DOT": "100"})
    sid = next(
        s["id"]
        for s in a.ok("Earn/Strategies", {"asset": "DOT"})["items"]
        if s["lock_type"]["type"] == "instant"
    )
    assert a("Earn/Allocate", {"strategy_id": sid, "amount": "0.001"})["error"] == [
        "EEarnings:Below min:(De)allocation operation amount less than minimum"
    ]
    assert a.ok("Earn/Allocate", {"strategy_id": sid, "amount": "10"}) is True
    assert a("Earn/Allocate", {"strategy_id": sid, "amount": "10"})["error"] == [
        "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
    ]
    assert a("Earn/Allocate", {"strategy_id": sid, "amount": "1000"})["error"] == [
        "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
    ]
    sandbox.advance(30)  # the allocation settles; pending funds earn nothing
    sandbox.advance(86400 * 30)  # a month of rewards at ~10% APR
    allocs = a.ok("Earn/Allocations")["items"][0]
    assert Decimal(allocs["total_rewarded"]["native"]) > Decimal("0.05")
    # Since Kraken's 13 Nov 2025 change Balance no longer lists ".F" Earn assets.
    assert not any(name.endswith(".F") for name in a.ok("Balance"))


def test_state_persists_across_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    sb = start_sandbox(["--state", str(state)], seed=7)
    try:
        a = Account(sb, {"USD": "1234.5"})
        txid = a.ok(
            "AddOrder",
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": "1000",
                "volume": "0.01",
            },
        )["txid"][0]
    finally:
        stop_sandbox(sb)  # SIGTERM → save on shutdown
    assert json.loads(state.read_text())["version"] == 1
    sb2 = start_sandbox(["--state", str(state)], seed=7)
    try:
        a.sb = sb2
        assert a.bal("ZUSD") == Decimal("1234.5")
        assert a.ok("OpenOrders")["open"][txid]["status"] == "open"
        assert a.hold("ZUSD") > 0
        # Same seed after a restart: new ids must not collide with restored ones.
        txid2 = a.ok(
            "AddOrder",
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": "1000",
                "volume": "0.01",
            },
        )["txid"][0]
        assert txid2 != txid
        assert set(a.ok("OpenOrders")["open"]) == {txid, txid2}
        a.ok("CancelOrder", {"txid": txid})
    finally:
        stop_sandbox(sb2)


def test_market_price_protection(sandbox: SandboxProcess) -> None:
    sandbox.move_price("XBTUSD", "65000")
    seller = Account(sandbox, {"XBT": "5"})
    far = seller.ok(
        "AddOrder",
        {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "price": "67000", "volume": "1"},
    )["txid"][0]
    buyer = Account(sandbox, {"USD": "10000000"})

    def sweep_volume() -> str:
        asks = sandbox.public("Depth", pair="XBTUSD", count=500)["result"]["XXBTZUSD"]["asks"]
        return str(sum(Decimal(a[1]) for a in asks if a[0] != "67000.0") + Decimal("0.5"))

    txid = buyer.ok(
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": sweep_volume()},
    )["txid"][0]
    o = buyer.order(txid)
    assert Decimal(o["vol_exec"]) < Decimal(o["vol"])  # stopped at the 1 % band
    assert seller.order(far)["vol_exec"] == "0.00000000"
    sandbox.move_price("XBTUSD", "65000")
    buyer.ok(
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "market",
            "volume": sweep_volume(),
            "oflags": "nompp",
        },
    )
    assert Decimal(seller.order(far)["vol_exec"]) > 0
    seller("CancelAll")


async def test_ws_trading_methods(sandbox: SandboxProcess, acct: Account) -> None:
    token = acct.ok("GetWebSocketsToken")["token"]

    async def call(ws: Any, method: str, params: dict[str, Any], req_id: int) -> Any:
        await ws.send(
            json.dumps({"method": method, "req_id": req_id, "params": {**params, "token": token}})
        )
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if msg.get("req_id") == req_id:
                return msg

    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.recv()
        add = await call(
            ws,
            "add_order",
            {
                "order_type": "limit",
                "side": "buy",
                "order_qty": 0.01,
                "symbol": "BTC/USD",
                "limit_price": 40000,
                "cl_ord_id": "ws-1",
            },
            1,
        )
        assert add["success"] is True
        assert add["result"]["cl_ord_id"] == "ws-1"
        oid = add["result"]["order_id"]
        amend = await call(
            ws, "amend_order", {"order_id": oid, "limit_price": 41000.5, "order_qty": 0.02}, 2
        )
        assert amend["success"] is True
        assert amend["result"]["amend_id"].startswith("T")
        info = acct.order(oid)
        assert (info["descr"]["price"], info["vol"]) == ("41000.5", "0.02000000")
        stop = await call(
            ws,
            "add_order",
            {
                "order_type": "stop-loss",
                "side": "sell",
                "order_qty": 0.01,
                "symbol": "BTC/USD",
                "triggers": {"price": 50000, "reference": "last"},
            },
            3,
        )
        assert stop["success"] is True
        bad = await call(
            ws,
            "add_order",
            {
                "order_type": "limit",
                "side": "buy",
                "order_qty": 0.01,
                "symbol": "BTC/USD",
                "limit_price": 40000,
                "leverage": 2,
            },
            4,
        )
        assert bad["success"] is False
        assert "Unsupported field" in bad["error"]
        after = await call(ws, "cancel_all_orders_after", {"timeout": 60}, 5)
        assert after["success"] is True
        assert after["result"]["triggerTime"] > after["result"]["currentTime"]
        cancel_all = await call(ws, "cancel_all", {}, 6)
        assert cancel_all["result"]["count"] == 2
        gone = await call(ws, "cancel_order", {"order_id": [oid]}, 7)
        assert (gone["success"], gone["error"]) == (False, "EOrder:Invalid order")
        await call(ws, "cancel_all_orders_after", {"timeout": 0}, 8)


def test_deposit_status_honours_start_and_end(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"USD": "10"})
    first = sandbox.deposit(a.id, "XBT", "0.1")
    between = sandbox.advance(600)
    second = sandbox.deposit(a.id, "XBT", "0.2")

    def refids(params: dict[str, Any]) -> list[str]:
        return [d["refid"] for d in a.ok("DepositStatus", {"asset": "XBT", **params})]

    assert refids({}) == [second, first]  # newest first
    assert refids({"start": str(int(between))}) == [second]
    assert refids({"end": str(int(between))}) == [first]


def test_legacy_earn_balances_are_named_by_altname(sandbox: SandboxProcess) -> None:
    """In the pre-Nov-2025 shape (a sandbox setting) Earn funds show as "ETH.F"."""
    a = Account(sandbox, {"ETH": "1"})
    sid = a.ok("Earn/Strategies", {"asset": "ETH"})["items"][0]["id"]
    assert a.ok("Earn/Allocate", {"strategy_id": sid, "amount": "0.5"}) is True
    sandbox.advance(30)
    assert not any(name.endswith(".F") for name in a.ok("Balance"))
    sandbox.configure(legacy_f_balances=True)
    try:
        balances = a.ok("Balance")
        assert Decimal(balances["ETH.F"]) >= Decimal("0.5")
        assert "XETH.F" not in balances
        extended = a.ok("BalanceEx")
        assert Decimal(extended["ETH.F"]["balance"]) >= Decimal("0.5")
        assert extended["ETH.F"]["hold_trade"] == "0.0000000000"
    finally:
        sandbox.configure(legacy_f_balances=False)
    assert "ETH.F" not in a.ok("Balance")


async def test_ws_token_stays_valid_on_the_connection_that_used_it(
    sandbox: SandboxProcess, acct: Account
) -> None:
    token = acct.ok("GetWebSocketsToken")["token"]

    async def reply(ws: Any, method: str) -> dict[str, Any]:
        for _ in range(100):
            msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if msg.get("method") == method:
                return msg
        raise AssertionError(f"no {method} reply")

    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.send(
            json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": token}})
        )
        assert (await reply(ws, "subscribe"))["success"] is True
        sandbox.advance(901)  # past the 15 minutes of an unused token
        await ws.send(json.dumps({"method": "cancel_all", "params": {"token": token}}))
        assert (await reply(ws, "cancel_all"))["success"] is True
    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.send(json.dumps({"method": "cancel_all", "params": {"token": token}}))
        assert (await reply(ws, "cancel_all"))["error"] == "EAPI:Invalid token"
