"""System and per-pair statuses (REST, WS status and instrument channels), the Balance shapes
before and after Kraken's `.F` deprecation, account ids (IIBANs) for subaccount transfers and
GetApiKeyInfo — against a running sandbox."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Any

import pytest
import websockets

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox

IIBAN = re.compile(r"^AA\d\d N84G [A-Z2-7]{4} [A-Z2-7]{4}$")


class Account:
    def __init__(self, sb: SandboxProcess, balances: dict[str, str]) -> None:
        self.sb = sb
        self.id = sb.create_account(balances, tier="pro")
        self.key, self.secret = sb.create_key(self.id)

    def __call__(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.sb.private(self.key, self.secret, method, params)

    def ok(self, method: str, params: dict[str, Any] | None = None) -> Any:
        out = self(method, params)
        assert out["error"] == [], out
        return out["result"]


async def _next(ws: Any, channel: str, kind: str | None = None) -> dict[str, Any]:
    """The next frame of ``channel`` (and ``type``), skipping heartbeats and others."""

    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("channel") == channel and (kind is None or frame.get("type") == kind):
                return frame

    return await asyncio.wait_for(wait(), timeout=10)


async def _answer(ws: Any, method: str) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("method") == method:
                return frame

    return await asyncio.wait_for(wait(), timeout=10)


# ---------------------------------------------------------------------- system status
async def test_status_is_pushed_on_connect_and_when_it_changes(sandbox: SandboxProcess) -> None:
    async with websockets.connect(sandbox.ws_url) as ws:
        first = json.loads(await ws.recv())
        assert first["channel"] == "status"
        assert first["type"] == "update"
        data = first["data"][0]
        assert data["system"] == "online"
        assert data["api_version"] == "v2"
        assert isinstance(data["connection_id"], int)
        assert isinstance(data["version"], str)
        try:
            sandbox.set_status("post_only")
            update = (await _next(ws, "status"))["data"][0]
            assert update["system"] == "post_only"
            assert update["connection_id"] == data["connection_id"]
            # A connection opened now is told the current mode first.
            async with websockets.connect(sandbox.ws_auth_url) as other:
                hello = json.loads(await other.recv())
                assert hello["data"][0]["system"] == "post_only"
        finally:
            sandbox.set_status("online")
        assert (await _next(ws, "status"))["data"][0]["system"] == "online"


# ---------------------------------------------------------------------- pair statuses
ETH_LIMIT = {"pair": "ETHUSD", "type": "buy", "ordertype": "limit", "price": "1000.00"}


def test_pair_statuses_gate_orders_with_krakens_strings(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"USD": "1000000", "ETH": "100"})
    resting = a.ok("AddOrder", {**ETH_LIMIT, "volume": "0.1"})["txid"][0]
    spare = a.ok("AddOrder", {**ETH_LIMIT, "volume": "0.2"})["txid"][0]
    market = {"pair": "ETHUSD", "type": "buy", "ordertype": "market", "volume": "0.01"}
    stop = {**ETH_LIMIT, "ordertype": "stop-loss", "price": "9000.00", "volume": "0.1"}
    try:
        answer = sandbox.set_pair_status("ETH/USD", "limit_only")
        assert answer["status"] == "limit_only"
        pairs = sandbox.public("AssetPairs", pair="ETHUSD")["result"]
        assert pairs["XETHZUSD"]["status"] == "limit_only"
        assert a("AddOrder", market)["error"] == ["EService:Market in limit_only mode"]
        assert a("AddOrder", stop)["error"] == ["EService:Market in limit_only mode"]
        assert a("AddOrder", {**ETH_LIMIT, "volume": "0.1", "validate": "true"})["error"] == []
        assert a("AmendOrder", {"txid": resting, "order_qty": "0.15"})["error"] == []
        # Other pairs are not affected.
        assert sandbox.public("AssetPairs", pair="XBTUSD")["result"]["XXBTZUSD"]["status"] == (
            "online"
        )

        sandbox.set_pair_status("ETH/USD", "cancel_only")
        limit = {**ETH_LIMIT, "volume": "0.1"}
        assert a("AddOrder", limit)["error"] == ["EService:Market in cancel_only mode"]
        assert a("AmendOrder", {"txid": resting, "order_qty": "0.12"})["error"] == [
            "EService:Market in cancel_only mode"
        ]
        assert a("CancelOrder", {"txid": spare})["error"] == []

        sandbox.set_pair_status("ETH/USD", "post_only")
        assert a("AddOrder", limit)["error"] == ["EService:Market in post_only mode"]
        assert a("AddOrder", {**limit, "oflags": "post", "validate": "true"})["error"] == []
        assert a("AmendOrder", {"txid": resting, "order_qty": "0.12"})["error"] == [
            "EService:Market in post_only mode"
        ]
        assert (
            a("AmendOrder", {"txid": resting, "order_qty": "0.12", "post_only": "true"})["error"]
            == []
        )

        sandbox.set_pair_status("ETH/USD", "reduce_only")
        assert a("AddOrder", limit)["error"] == ["EService:Market in reduce_only mode"]

        sandbox.set_pair_status("ETH/USD", "maintenance")
        assert a("AddOrder", limit)["error"] == ["EService:Market in maintenance mode"]
        assert a("CancelOrder", {"txid": resting})["error"] == [
            "EService:Market in maintenance mode"
        ]
        # CancelAll cancels what it can; the order on the pair in maintenance stays.
        a.ok("CancelAll")
        assert a.ok("QueryOrders", {"txid": resting})[resting]["status"] == "open"
        health = sandbox.health()
        assert health["pair_statuses"] == {"ETH/USD": "maintenance"}
    finally:
        sandbox.set_pair_status("ETH/USD", "online")
    assert a.ok("CancelOrder", {"txid": resting})["count"] == 1
    with pytest.raises(RuntimeError, match="status must be one of"):
        sandbox.set_pair_status("ETH/USD", "sleepy")


def test_no_matching_on_a_cancel_only_pair(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"USD": "1000", "ETH": "10"})
    sandbox.move_price("ETHUSD", "3000")
    sell = a.ok(
        "AddOrder",
        {"pair": "ETHUSD", "type": "sell", "ordertype": "limit", "price": "3100.00", "volume": "1"},
    )["txid"][0]
    try:
        sandbox.set_pair_status("ETH/USD", "cancel_only")
        sandbox.move_price("ETHUSD", "3300")
        assert a.ok("QueryOrders", {"txid": sell})[sell]["status"] == "open"
    finally:
        sandbox.set_pair_status("ETH/USD", "online")
    sandbox.move_price("ETHUSD", "3310")
    assert a.ok("QueryOrders", {"txid": sell})[sell]["status"] == "closed"
    sandbox.move_price("ETHUSD", "3000")


async def test_instrument_channel_and_ws_orders_follow_the_pair_status(
    sandbox: SandboxProcess,
) -> None:
    a = Account(sandbox, {"USD": "100000"})
    token = a.ok("GetWebSocketsToken")["token"]
    async with (
        websockets.connect(sandbox.ws_url) as public,
        websockets.connect(sandbox.ws_auth_url) as private,
    ):
        await public.send(json.dumps({"method": "subscribe", "params": {"channel": "instrument"}}))
        snapshot = await _next(public, "instrument", "snapshot")
        eth = next(p for p in snapshot["data"]["pairs"] if p["symbol"] == "ETH/USD")
        assert eth["status"] == "online"
        try:
            sandbox.set_pair_status("ETH/USD", "limit_only")
            update = await _next(public, "instrument", "update")
            assert [(p["symbol"], p["status"]) for p in update["data"]["pairs"]] == [
                ("ETH/USD", "limit_only")
            ]
            params = {
                "order_type": "market",
                "side": "buy",
                "order_qty": 0.01,
                "symbol": "ETH/USD",
                "token": token,
            }
            await private.send(json.dumps({"method": "add_order", "params": params}))
            refused = await _answer(private, "add_order")
            assert refused["success"] is False
            assert refused["error"] == "EService:Market in limit_only mode"
        finally:
            sandbox.set_pair_status("ETH/USD", "online")
        back = await _next(public, "instrument", "update")
        assert back["data"]["pairs"][0]["status"] == "online"


# ---------------------------------------------------------------------- .F balances
def test_legacy_f_balances_flag(sandbox: SandboxProcess) -> None:
    assert sandbox.health()["legacy_f_balances"] is False
    legacy = start_sandbox(["--legacy-f-balances"], seed=11)
    try:
        assert legacy.health()["legacy_f_balances"] is True
        a = Account(legacy, {"DOT": "100"})
        sid = a.ok("Earn/Strategies", {"asset": "DOT"})["items"][0]["id"]
        assert a.ok("Earn/Allocate", {"strategy_id": sid, "amount": "10"}) is True
        legacy.advance(86400)
        assert Decimal(a.ok("Balance")["DOT.F"]) >= Decimal("10")
        assert Decimal(a.ok("BalanceEx")["DOT.F"]["balance"]) >= Decimal("10")
        # The control API switches to the current shape and back.
        assert legacy.configure(legacy_f_balances=False)["legacy_f_balances"] is False
        assert "DOT.F" not in a.ok("Balance")
        assert "DOT.F" not in a.ok("BalanceEx")
    finally:
        stop_sandbox(legacy)


# ---------------------------------------------------------------------- account ids
def test_account_transfer_by_account_id(sandbox: SandboxProcess) -> None:
    master = Account(sandbox, {"USD": "1000"})
    master_iiban = sandbox.account(master.id)["iiban"]
    assert IIBAN.match(master_iiban)
    sub = sandbox.create_subaccount_info(master.id, "desk-iiban")
    assert IIBAN.match(sub["iiban"])
    assert sub["parent_iiban"] == master_iiban
    assert sub["username"] == "desk-iiban"
    details = sandbox.account(master.id)["subaccount_details"]
    assert {"account_id": sub["account_id"], "iiban": sub["iiban"], "username": "desk-iiban"} in (
        details
    )

    out = master.ok(
        "AccountTransfer",
        {"asset": "USD", "amount": "100", "from": master_iiban, "to": sub["iiban"]},
    )
    assert out["status"] == "complete"
    assert sandbox.account(sub["account_id"])["balances"]["ZUSD"] == "100.0000"
    # Spaces and case do not matter; the username works too.
    compact = sub["iiban"].replace(" ", "").lower()
    master.ok(
        "AccountTransfer", {"asset": "USD", "amount": "30", "from": compact, "to": "desk-iiban"}
    )
    master.ok(
        "AccountTransfer",
        {"asset": "USD", "amount": "10", "from": "desk-iiban", "to": master_iiban},
    )
    assert sandbox.account(sub["account_id"])["balances"]["ZUSD"] == "90.0000"
    assert master(
        "AccountTransfer",
        {"asset": "USD", "amount": "1", "from": master_iiban, "to": "AA00 N84G NONE NONE"},
    )["error"] == ["EGeneral:Invalid arguments:to"]
    stranger = sandbox.account(sandbox.create_account({"USD": "5"}))["iiban"]
    assert master(
        "AccountTransfer", {"asset": "USD", "amount": "1", "from": master_iiban, "to": stranger}
    )["error"] == ["EGeneral:Permission denied"]


# ---------------------------------------------------------------------- GetApiKeyInfo
def test_get_api_key_info(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "1"})
    key, secret = sandbox.create_key(
        acct, permissions=["trade", "query_funds"], nonce_window=5, name="desk-trading"
    )
    info = sandbox.private(key, secret, "GetApiKeyInfo")
    assert info["error"] == []
    result = info["result"]
    assert result["name"] == "desk-trading"
    assert result["permissions"] == ["query_funds", "trade"]
    assert result["restrictions"]["nonce_window"] == 5
    assert result["restrictions"]["otp_required"] is False
    assert result["created_at"].endswith("Z")
    assert result["last_used_at"].endswith("Z")
    # Needs no permission at all.
    bare, bare_secret = sandbox.create_key(acct, permissions=[])
    bare_info = sandbox.private(bare, bare_secret, "GetApiKeyInfo")
    assert bare_info["error"] == []
    assert bare_info["result"]["permissions"] == []
