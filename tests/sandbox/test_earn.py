"""Earn as FUNDING-EARN.md describes it: lock types, tier and cap refusals with the
`EEarnings:*` strings, bonding/unbonding as allocation states (never keeping a strategy
busy), pending amounts, failures reported by the status call, auto-earn (flex) funds that
stay spendable, and one Earn wallet per lock type in the WS `balances` channel."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import websockets

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox

DOT_INSTANT = "ESRFUO3-Q62XD-WIOIL7"
DOT_BONDED = "ESDQCOL-WTZEU-NU55QF"
DOT_FLEX = "ESFLXDO-TAUTO-EARN01"
ETH_TIMED = "ESTMETH-6MNTH-LOCK01"
USDC_INSTANT = "ESMWVX6-JAPVY-23L3CV"
SOL_BONDED = "ESSR4XE-DS3WX-3YEXPA"
ADA_INSTANT = "ESUKXMZ-B34BL-LRAEDV"
DAY = 86400

BELOW_MIN = "EEarnings:Below min:(De)allocation operation amount less than minimum"
BUSY = "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
TIER = "EEarnings:Permission denied:The user's tier is not high enough"
INSUFFICIENT = (
    "EEarnings:Insufficient funds:Insufficient funds to complete the (de)allocation request"
)
ABOVE_USER = "EEarnings:Above max:The allocation exceeds user limit for the strategy"
ABOVE_TOTAL = "EEarnings:Above max:The allocation exceeds the total strategy limit"
NOT_ALLOWED = "EEarnings:Permission denied:The strategy does not allow this operation"


class Account:
    def __init__(self, sb: SandboxProcess, balances: dict[str, str], tier: str = "pro") -> None:
        self.sb = sb
        self.id = sb.create_account(balances, tier=tier)
        self.key, self.secret = sb.create_key(self.id)

    def __call__(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.sb.private(self.key, self.secret, method, params, as_json=True)

    def ok(self, method: str, params: dict[str, Any] | None = None) -> Any:
        out = self(method, params)
        assert out["error"] == [], out
        return out["result"]

    def error(self, method: str, params: dict[str, Any]) -> str:
        out = self(method, params)
        assert len(out["error"]) == 1, out
        return str(out["error"][0])

    def item(self, sid: str) -> dict[str, Any]:
        items = self.ok("Earn/Allocations")["items"]
        return next(i for i in items if i["strategy_id"] == sid)

    def spot(self, asset: str) -> Decimal:
        return Decimal(self.ok("Balance").get(asset, "0"))


def test_lock_types_and_what_each_allows(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"DOT": "100"})
    dot = {s["id"]: s for s in a.ok("Earn/Strategies", {"asset": "DOT"})["items"]}
    assert {s["lock_type"]["type"] for s in dot.values()} == {"instant", "bonded", "flex"}
    flex = dot[DOT_FLEX]
    assert (flex["can_allocate"], flex["can_deallocate"]) == (False, False)
    assert dot[DOT_INSTANT]["lock_type"] == {"type": "instant", "payout_frequency": 604800}
    bonded = dot[DOT_BONDED]["lock_type"]
    assert bonded["unbonding_period"] == 28 * DAY
    assert bonded["bonding_rewards"] is False
    timed = a.ok("Earn/Strategies", {"lock_type": ["timed"]})["items"]
    assert [(s["id"], s["lock_type"]["type"]) for s in timed] == [(ETH_TIMED, "timed")]
    assert timed[0]["lock_type"]["duration_months"] == 6
    assert timed[0]["can_deallocate"] is False
    assert a.error("Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "1"}) == NOT_ALLOWED
    assert a.error("Earn/Deallocate", {"strategy_id": DOT_FLEX, "amount": "1"}) == NOT_ALLOWED
    assert a.error("Earn/Allocate", {"strategy_id": "ESNOPE", "amount": "1"}) == (
        "EGeneral:Invalid arguments:Invalid strategy ID"
    )


def test_strategies_page_with_a_cursor_until_it_is_null(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {})
    everything = [s["id"] for s in a.ok("Earn/Strategies")["items"]]
    seen: list[str] = []
    cursor = None
    for _ in range(len(everything)):
        page = a.ok("Earn/Strategies", {"limit": 5, **({"cursor": cursor} if cursor else {})})
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert seen == everything


def test_refusals_use_krakens_strings(sandbox: SandboxProcess) -> None:
    starter = Account(sandbox, {"DOT": "100", "ETH": "10"}, tier="starter")
    bonded = next(
        s for s in starter.ok("Earn/Strategies", {"asset": "DOT"})["items"] if s["id"] == DOT_BONDED
    )
    assert (bonded["can_allocate"], bonded["allocation_restriction_info"]) == (False, ["tier"])
    assert starter.error("Earn/Allocate", {"strategy_id": DOT_BONDED, "amount": "5"}) == TIER

    a = Account(sandbox, {"DOT": "100", "USDC": "200000", "ETH": "500"})
    assert a.error("Earn/Allocate", {"strategy_id": DOT_INSTANT, "amount": "0.001"}) == BELOW_MIN
    assert a.error("Earn/Allocate", {"strategy_id": DOT_INSTANT, "amount": "101"}) == INSUFFICIENT
    assert a.error("Earn/Allocate", {"strategy_id": USDC_INSTANT, "amount": "150000"}) == (
        ABOVE_USER
    )
    assert a.error("Earn/Allocate", {"strategy_id": ETH_TIMED, "amount": "101"}) == ABOVE_TOTAL
    assert a.ok("Earn/Allocate", {"strategy_id": DOT_INSTANT, "amount": "10"}) is True
    assert a.error("Earn/Allocate", {"strategy_id": DOT_INSTANT, "amount": "10"}) == BUSY
    sandbox.advance(30)
    assert a.error("Earn/Deallocate", {"strategy_id": DOT_INSTANT, "amount": "20"}) == INSUFFICIENT


def test_bonding_and_unbonding_are_states_not_busy_operations(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"SOL": "100"})
    assert a.ok("Earn/Allocate", {"strategy_id": SOL_BONDED, "amount": "10"}) is True
    assert a.ok("Earn/AllocateStatus", {"strategy_id": SOL_BONDED}) == {"pending": True}
    pending = a.item(SOL_BONDED)["amount_allocated"]
    assert Decimal(pending["pending"]["native"]) == 10
    assert Decimal(pending["total"]["native"]) == 10
    sandbox.advance(30)
    assert a.ok("Earn/AllocateStatus", {"strategy_id": SOL_BONDED}) == {"pending": False}
    state = a.item(SOL_BONDED)["amount_allocated"]
    assert Decimal(state["bonding"]["native"]) == 10
    assert state["bonding"]["allocation_count"] == 1
    assert (
        state["bonding"]["allocations"][0]["expires"]
        > state["bonding"]["allocations"][0]["created_at"]
    )
    assert Decimal(state["pending"]["native"]) == 0
    # Bonding does not keep the strategy busy: a second allocation goes in at once.
    assert a.ok("Earn/Allocate", {"strategy_id": SOL_BONDED, "amount": "5"}) is True
    sandbox.advance(DAY + 60)
    state = a.item(SOL_BONDED)["amount_allocated"]
    assert Decimal(state["bonding"]["native"]) == 0
    assert Decimal(state["allocated"]["native"]) >= 15

    spot_before = a.spot("SOL")
    assert a.ok("Earn/Deallocate", {"strategy_id": SOL_BONDED, "amount": "6"}) is True
    assert Decimal(a.item(SOL_BONDED)["amount_allocated"]["pending"]["native"]) == -6
    assert a.ok("Earn/DeallocateStatus", {"strategy_id": SOL_BONDED}) == {"pending": True}
    sandbox.advance(30)
    assert a.ok("Earn/DeallocateStatus", {"strategy_id": SOL_BONDED}) == {"pending": False}
    state = a.item(SOL_BONDED)["amount_allocated"]
    assert Decimal(state["unbonding"]["native"]) == 6
    assert a.spot("SOL") == spot_before  # still unbonding
    # …and unbonding does not block the strategy either.
    assert a.ok("Earn/Deallocate", {"strategy_id": SOL_BONDED, "amount": "1"}) is True
    sandbox.advance(3 * DAY + 60)
    assert a.spot("SOL") == spot_before + 7
    assert Decimal(a.item(SOL_BONDED)["amount_allocated"]["unbonding"]["native"]) == 0


def test_a_background_failure_is_reported_by_the_status_call(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"ADA": "100"})
    sandbox.control(
        "POST",
        f"/sandbox/accounts/{a.id}/earn-failures",
        {"strategy_id": ADA_INSTANT, "error": "EEarnings:Busy"},
    )
    assert a.ok("Earn/Allocate", {"strategy_id": ADA_INSTANT, "amount": "50"}) is True
    assert a.spot("ADA") == 50
    sandbox.advance(30)
    assert a("Earn/AllocateStatus", {"strategy_id": ADA_INSTANT}) == {"error": ["EEarnings:Busy"]}
    assert a("Earn/AllocateStatus", {"strategy_id": ADA_INSTANT})["error"] == ["EEarnings:Busy"]
    assert a.spot("ADA") == 100  # refunded
    # The next operation replaces the verdict.
    assert a.ok("Earn/Allocate", {"strategy_id": ADA_INSTANT, "amount": "50"}) is True
    sandbox.advance(30)
    assert a.ok("Earn/AllocateStatus", {"strategy_id": ADA_INSTANT}) == {"pending": False}
    assert Decimal(a.item(ADA_INSTANT)["amount_allocated"]["allocated"]["native"]) >= 50


def test_timed_allocations_come_back_by_themselves(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"ETH": "10"})
    assert a.ok("Earn/Allocate", {"strategy_id": ETH_TIMED, "amount": "2"}) is True
    sandbox.advance(30)
    assert a.error("Earn/Deallocate", {"strategy_id": ETH_TIMED, "amount": "1"}) == NOT_ALLOWED
    assert a.spot("XETH") == 8
    sandbox.advance(183 * DAY)
    assert a.spot("XETH") > 10  # principal and rewards
    assert ETH_TIMED not in {i["strategy_id"] for i in a.ok("Earn/Allocations")["items"]}


async def test_auto_earn_is_spendable_and_wallets_are_labelled(sandbox: SandboxProcess) -> None:
    sandbox.move_price("DOTUSD", "7.0000")
    a = Account(sandbox, {"DOT": "100", "USD": "10"})
    moved = sandbox.control(
        "POST", f"/sandbox/accounts/{a.id}/auto-earn", {"asset": "DOT", "amount": "60"}
    )
    assert (moved["strategy_id"], moved["flex"]) == (DOT_FLEX, "60.0000000000")
    assert a.spot("DOT") == 40  # the spot wallet; Earn funds are not in Balance any more
    for sid, amount in ((DOT_INSTANT, "10"), (DOT_BONDED, "5")):
        assert a.ok("Earn/Allocate", {"strategy_id": sid, "amount": amount}) is True
    sandbox.advance(30)
    assert Decimal(a.item(DOT_FLEX)["amount_allocated"]["total"]["native"]) >= 60

    token = a.ok("GetWebSocketsToken")["token"]
    async with websockets.connect(sandbox.ws_auth_url) as ws:
        await ws.send(
            json.dumps({"method": "subscribe", "params": {"channel": "balances", "token": token}})
        )
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("channel") == "balances" and frame.get("type") == "snapshot":
                break
        dot = next(entry for entry in frame["data"] if entry["asset"] == "DOT")
        wallets = {(w["type"], w["id"]): Decimal(str(w["balance"])) for w in dot["wallets"]}
        assert wallets[("spot", "main")] == 25
        assert wallets[("earn", "flex")] >= 60
        assert wallets[("earn", "flexible")] >= 10
        assert Decimal(5) <= wallets[("earn", "bonded")] < Decimal("5.001")  # + rewards
        assert Decimal(str(dot["balance"])) == sum(wallets.values())

        # Selling more than the spot wallet holds draws on auto-earn funds.
        order = {"pair": "DOTUSD", "type": "sell", "ordertype": "market", "volume": "50"}
        assert a("AddOrder", order)["error"] == [], a("Balance")
        updates: list[dict[str, Any]] = []
        while not any(u["wallet_id"] == "flex" for u in updates):
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("channel") == "balances" and frame.get("type") == "update":
                updates.extend(frame["data"])
    # Each update's `balance` is the asset's total across wallets (Kraken: "the total amount
    # of this asset held in account"), not the wallet's: the Earn funds (35+ flex, 10, 5)
    # stay in it while the spot wallet empties.
    dot_updates = [u for u in updates if u["asset"] == "DOT"]
    assert all(Decimal(str(u["balance"])) >= 50 for u in dot_updates), dot_updates
    flex_update = next(u for u in updates if u["wallet_id"] == "flex")
    assert (flex_update["wallet_type"], flex_update["subtype"]) == ("earn", "autodeallocation")
    # The fill(s) beyond the 25 DOT in spot came out of auto-earn (one update per fill).
    assert Decimal(-25) <= Decimal(str(flex_update["amount"])) < 0
    assert a.spot("DOT") == 0
    flex_left = Decimal(a.item(DOT_FLEX)["amount_allocated"]["allocated"]["native"])
    assert Decimal("35") <= flex_left < Decimal("36")


def test_legacy_f_balance_counts_every_earn_wallet(sandbox: SandboxProcess) -> None:
    a = Account(sandbox, {"DOT": "100"})
    sandbox.control("POST", f"/sandbox/accounts/{a.id}/auto-earn", {"asset": "DOT", "amount": "20"})
    assert a.ok("Earn/Allocate", {"strategy_id": DOT_BONDED, "amount": "30"}) is True
    sandbox.advance(30)
    sandbox.configure(legacy_f_balances=True)
    try:
        legacy = a.ok("Balance")
    finally:
        sandbox.configure(legacy_f_balances=False)
    assert Decimal(legacy["DOT"]) == 50
    assert Decimal(legacy["DOT.F"]) >= 50


def test_earn_states_pair_statuses_and_account_ids_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    sb = start_sandbox(["--state", str(state)], seed=5)
    try:
        a = Account(sb, {"SOL": "100", "DOT": "50"})
        iiban = sb.account(a.id)["iiban"]
        sb.control("POST", f"/sandbox/accounts/{a.id}/auto-earn", {"asset": "DOT", "amount": "20"})
        assert a.ok("Earn/Allocate", {"strategy_id": SOL_BONDED, "amount": "10"}) is True
        sb.advance(30)  # settled: 10 SOL bonding for a day
        sb.set_pair_status("SOL/USD", "limit_only")
    finally:
        stop_sandbox(sb)  # SIGTERM → save on shutdown
    sb2 = start_sandbox(["--state", str(state)], seed=5)
    try:
        a.sb = sb2
        assert sb2.account(a.id)["iiban"] == iiban
        assert sb2.health()["pair_statuses"] == {"SOL/USD": "limit_only"}
        bonding = a.item(SOL_BONDED)["amount_allocated"]["bonding"]
        assert Decimal(bonding["native"]) == Decimal(10)
        assert bonding["allocation_count"] == 1
        assert Decimal(a.item(DOT_FLEX)["amount_allocated"]["allocated"]["native"]) >= 20
        sb2.advance(DAY + 60)
        assert Decimal(a.item(SOL_BONDED)["amount_allocated"]["allocated"]["native"]) >= 10
    finally:
        stop_sandbox(sb2)
