"""Earn: strategies, asynchronous (de)allocation and accruing rewards."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .engine import Account, Engine
from .errors import KrakenError, invalid
from .pairs import ASSETS, fmt
from .params import check_known, opt_bool, opt_dec, opt_int, opt_str, req_str, str_list
from .private import Ctx, Handler, allow
from .util import decimals_of, rfc3339_s

D = Decimal
ZERO = D(0)
YEAR = D(365 * 86400)


@dataclass(frozen=True, slots=True)
class Strategy:
    id: str
    asset: str  # internal asset id
    lock: str  # flex | bonded | instant
    apr_low: Decimal
    apr_high: Decimal
    min_alloc: Decimal
    bonding_s: int = 0
    unbonding_s: int = 0
    payout_s: int = 604800

    @property
    def apr(self) -> Decimal:
        return (self.apr_low + self.apr_high) / 2


STRATEGIES: dict[str, Strategy] = {
    s.id: s
    for s in (
        Strategy("ESRFUO3-Q62XD-WIOIL7", "DOT", "flex", D("8"), D("12"), D("0.01")),
        Strategy(
            "ESDQCOL-WTZEU-NU55QF",
            "DOT",
            "bonded",
            D("14"),
            D("18"),
            D("1"),
            bonding_s=0,
            unbonding_s=2419200,
        ),
        Strategy("ESLKQ2J-ZJQNA-5WFHZP", "XETH", "flex", D("2.5"), D("3.5"), D("0.001")),
        Strategy("ESXUM7H-SJHQ6-KOQNNI", "XXBT", "flex", D("0.1"), D("0.25"), D("0.0001")),
        Strategy("ESMWVX6-JAPVY-23L3CV", "USDC", "flex", D("3.5"), D("4.5"), D("1")),
        Strategy(
            "ESSR4XE-DS3WX-3YEXPA",
            "SOL",
            "bonded",
            D("6"),
            D("8"),
            D("0.5"),
            bonding_s=86400,
            unbonding_s=259200,
        ),
        Strategy("ESUKXMZ-B34BL-LRAEDV", "ADA", "instant", D("1.5"), D("3"), D("5")),
    )
}


def _wire_asset(asset: str) -> str:
    return ASSETS[asset].altname


def accrue(e: Engine, acct: Account, now: float) -> None:
    """Accrue rewards linearly since the last accrual (APR midpoint)."""
    dt = D(repr(max(0.0, now - acct.earn_accrued_at))) if acct.earn_accrued_at else ZERO
    acct.earn_accrued_at = now
    if not dt:
        return
    for sid, amt in acct.earn.items():
        s = STRATEGIES.get(sid)
        if s and amt > 0:
            reward = amt * s.apr / 100 * dt / YEAR
            acct.earn_rewards[sid] = acct.earn_rewards.get(sid, ZERO) + reward


def settle(e: Engine) -> None:
    """Complete (de)allocations whose processing time has passed."""
    now = e.now()
    for acct in e.accounts.values():
        if acct.earn or acct.earn_pending:
            accrue(e, acct, now)
        for sid, op in list(acct.earn_pending.items()):
            if op["done_at"] > now:
                continue
            s = STRATEGIES[sid]
            amount: Decimal = op["amount"]
            if op["type"] == "allocate":
                acct.earn[sid] = acct.earn.get(sid, ZERO) + amount
            else:
                acct.earn[sid] = acct.earn.get(sid, ZERO) - amount
                e.credit(acct, s.asset, amount, "earn", "deallocation", e.ids.kid("E"))
            del acct.earn_pending[sid]


def _strategy(p: dict[str, Any]) -> Strategy:
    sid = req_str(p, "strategy_id")
    s = STRATEGIES.get(sid)
    if s is None:
        raise KrakenError("EGeneral:Invalid arguments:Invalid strategy ID")
    return s


def _amount(p: dict[str, Any], s: Strategy) -> Decimal:
    amount = opt_dec(p, "amount")
    if amount is None or amount <= 0 or decimals_of(amount) > ASSETS[s.asset].decimals:
        raise invalid("amount")
    if amount < s.min_alloc:
        raise KrakenError("EEarnings:Below min:(De)allocation operation amount less than minimum")
    return amount


def strategies(c: Ctx) -> Any:
    check_known(c.params, allow("ascending", "asset", "cursor", "limit", "lock_type"))
    asset = opt_str(c.params, "asset")
    locks = str_list(c.params, "lock_type")
    limit = opt_int(c.params, "limit") or 100
    items = []
    for s in STRATEGIES.values():
        if asset and _wire_asset(s.asset) != asset.upper() and s.asset != asset.upper():
            continue
        if locks and s.lock not in locks:
            continue
        lock: dict[str, Any] = {"type": s.lock, "payout_frequency": s.payout_s}
        if s.lock == "bonded":
            lock.update(
                {
                    "bonding_period": s.bonding_s,
                    "bonding_period_variable": False,
                    "bonding_rewards": False,
                    "unbonding_period": s.unbonding_s,
                    "unbonding_period_variable": False,
                    "unbonding_rewards": False,
                    "exit_queue_period": 0,
                }
            )
        items.append(
            {
                "id": s.id,
                "asset": _wire_asset(s.asset),
                "lock_type": lock,
                "apr_estimate": {"low": fmt(s.apr_low, 4), "high": fmt(s.apr_high, 4)},
                "user_min_allocation": format(s.min_alloc, "f"),
                "allocation_fee": "0.0000",
                "deallocation_fee": "0.0000",
                "auto_compound": {"type": "enabled"},
                "yield_source": {"type": "staking"},
                "can_allocate": True,
                "can_deallocate": True,
                "allocation_restriction_info": [],
            }
        )
    if opt_bool(c.params, "ascending"):
        items.reverse()
    return {"items": items[:limit], "next_cursor": None}


def allocations(c: Ctx) -> Any:
    check_known(c.params, allow("ascending", "converted_asset", "hide_zero_allocations"))
    e = c.engine
    accrue(e, c.acct, e.now())
    conv_name = opt_str(c.params, "converted_asset") or "USD"
    conv = None
    for a in ASSETS.values():
        if conv_name.upper() in (a.id, a.altname, a.ws):
            conv = a
    if conv is None:
        raise KrakenError("EQuery:Unknown asset")
    hide = opt_bool(c.params, "hide_zero_allocations")
    rate_conv = e.balance_usd(c.acct, conv.id, D(1)) or D(1)
    items = []
    total_alloc = ZERO
    total_rew = ZERO
    sids = set(c.acct.earn) | set(c.acct.earn_pending)
    for sid in sorted(sids):
        s = STRATEGIES[sid]
        allocated = c.acct.earn.get(sid, ZERO)
        reward = c.acct.earn_rewards.get(sid, ZERO)
        pend = c.acct.earn_pending.get(sid)
        if hide and not allocated and not pend:
            continue
        px = e.balance_usd(c.acct, s.asset, D(1)) / rate_conv
        places = ASSETS[s.asset].decimals

        def pair_amt(x: Decimal, places: int = places, px: Decimal = px) -> dict[str, str]:
            return {"native": fmt(x, places), "converted": fmt(x * px, 4)}

        amount_allocated: dict[str, Any] = {"total": pair_amt(allocated + reward)}
        if pend and pend["type"] == "allocate":
            amount_allocated["pending"] = pair_amt(pend["amount"])
        if pend and pend["type"] == "deallocate" and s.lock == "bonded":
            amount_allocated["unbonding"] = {
                **pair_amt(pend["amount"]),
                "allocation_count": 1,
                "allocations": [
                    {
                        **pair_amt(pend["amount"]),
                        "created_at": rfc3339_s(pend["created"]),
                        "expires": rfc3339_s(pend["done_at"]),
                    }
                ],
            }
        now = e.now()
        period_start = now - (now % s.payout_s)
        items.append(
            {
                "strategy_id": sid,
                "native_asset": _wire_asset(s.asset),
                "amount_allocated": amount_allocated,
                "total_rewarded": pair_amt(reward),
                "payout": {
                    "accumulated_reward": pair_amt(reward),
                    "estimated_reward": pair_amt(allocated * s.apr / 100 * D(s.payout_s) / YEAR),
                    "period_start": rfc3339_s(period_start),
                    "period_end": rfc3339_s(period_start + s.payout_s),
                },
            }
        )
        total_alloc += (allocated + reward) * px
        total_rew += reward * px
    if not opt_bool(c.params, "ascending"):
        items.reverse()
    return {
        "converted_asset": conv.altname,
        "total_allocated": fmt(total_alloc, 4),
        "total_rewarded": fmt(total_rew, 4),
        "items": items,
    }


def _busy(acct: Account, s: Strategy) -> None:
    if s.id in acct.earn_pending:
        raise KrakenError(
            "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
        )


def make_allocate(delay_getter: Any) -> Handler:
    def allocate(c: Ctx) -> Any:
        check_known(c.params, allow("amount", "strategy_id"))
        s = _strategy(c.params)
        amount = _amount(c.params, s)
        _busy(c.acct, s)
        if c.acct.available(s.asset) < amount:
            raise KrakenError(
                "EEarnings:Insufficient funds:Insufficient funds to complete the "
                "(de)allocation request"
            )
        now = c.engine.now()
        accrue(c.engine, c.acct, now)
        c.engine.credit(c.acct, s.asset, -amount, "earn", "allocation", c.engine.ids.kid("E"))
        c.acct.earn_pending[s.id] = {
            "type": "allocate",
            "amount": amount,
            "created": now,
            "done_at": now + float(delay_getter()) + s.bonding_s,
        }
        return True

    return allocate


def make_deallocate(delay_getter: Any) -> Handler:
    def deallocate(c: Ctx) -> Any:
        check_known(c.params, allow("amount", "strategy_id"))
        s = _strategy(c.params)
        amount = _amount(c.params, s)
        _busy(c.acct, s)
        now = c.engine.now()
        accrue(c.engine, c.acct, now)
        # Rewards auto-compound into the allocation, so they can be withdrawn too.
        reward = c.acct.earn_rewards.pop(s.id, ZERO)
        c.acct.earn[s.id] = c.acct.earn.get(s.id, ZERO) + reward
        if c.acct.earn.get(s.id, ZERO) < amount:
            raise KrakenError(
                "EEarnings:Insufficient funds:Insufficient funds to complete the "
                "(de)allocation request"
            )
        c.acct.earn_pending[s.id] = {
            "type": "deallocate",
            "amount": amount,
            "created": now,
            "done_at": now + float(delay_getter()) + s.unbonding_s,
        }
        return True

    return deallocate


def _status(kind: str) -> Handler:
    def status(c: Ctx) -> Any:
        check_known(c.params, allow("strategy_id"))
        s = _strategy(c.params)
        op = c.acct.earn_pending.get(s.id)
        return {"pending": bool(op and op["type"] == kind)}

    return status


def earn_handlers(delay_getter: Any) -> dict[str, Handler]:
    return {
        "Earn/Strategies": strategies,
        "Earn/Allocations": allocations,
        "Earn/Allocate": make_allocate(delay_getter),
        "Earn/Deallocate": make_deallocate(delay_getter),
        "Earn/AllocateStatus": _status("allocate"),
        "Earn/DeallocateStatus": _status("deallocate"),
    }
