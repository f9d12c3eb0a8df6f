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

ZERO = Decimal(0)
YEAR = Decimal(365 * 86400)


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
    strategy.id: strategy
    for strategy in (
        Strategy(
            "ESRFUO3-Q62XD-WIOIL7", "DOT", "flex", Decimal("8"), Decimal("12"), Decimal("0.01")
        ),
        Strategy(
            "ESDQCOL-WTZEU-NU55QF",
            "DOT",
            "bonded",
            Decimal("14"),
            Decimal("18"),
            Decimal("1"),
            bonding_s=0,
            unbonding_s=2419200,
        ),
        Strategy(
            "ESLKQ2J-ZJQNA-5WFHZP", "XETH", "flex", Decimal("2.5"), Decimal("3.5"), Decimal("0.001")
        ),
        Strategy(
            "ESXUM7H-SJHQ6-KOQNNI",
            "XXBT",
            "flex",
            Decimal("0.1"),
            Decimal("0.25"),
            Decimal("0.0001"),
        ),
        Strategy(
            "ESMWVX6-JAPVY-23L3CV", "USDC", "flex", Decimal("3.5"), Decimal("4.5"), Decimal("1")
        ),
        Strategy(
            "ESSR4XE-DS3WX-3YEXPA",
            "SOL",
            "bonded",
            Decimal("6"),
            Decimal("8"),
            Decimal("0.5"),
            bonding_s=86400,
            unbonding_s=259200,
        ),
        Strategy(
            "ESUKXMZ-B34BL-LRAEDV", "ADA", "instant", Decimal("1.5"), Decimal("3"), Decimal("5")
        ),
    )
}


def _wire_asset(asset: str) -> str:
    return ASSETS[asset].altname


def accrue(engine: Engine, acct: Account, now: float) -> None:
    """Accrue rewards linearly since the last accrual (APR midpoint)."""
    dt = Decimal(repr(max(0.0, now - acct.earn_accrued_at))) if acct.earn_accrued_at else ZERO
    acct.earn_accrued_at = now
    if not dt:
        return
    for sid, amt in acct.earn.items():
        strategy = STRATEGIES.get(sid)
        if strategy and amt > 0:
            reward = amt * strategy.apr / 100 * dt / YEAR
            acct.earn_rewards[sid] = acct.earn_rewards.get(sid, ZERO) + reward


def settle(engine: Engine) -> None:
    """Complete (de)allocations whose processing time has passed."""
    now = engine.now()
    for acct in engine.accounts.values():
        if acct.earn or acct.earn_pending:
            accrue(engine, acct, now)
        for sid, operation in list(acct.earn_pending.items()):
            if operation["done_at"] > now:
                continue
            strategy = STRATEGIES[sid]
            amount: Decimal = operation["amount"]
            if operation["type"] == "allocate":
                acct.earn[sid] = acct.earn.get(sid, ZERO) + amount
            else:
                acct.earn[sid] = acct.earn.get(sid, ZERO) - amount
                engine.credit(
                    acct, strategy.asset, amount, "earn", "deallocation", engine.ids.kid("E")
                )
            del acct.earn_pending[sid]


def _strategy(p: dict[str, Any]) -> Strategy:
    sid = req_str(p, "strategy_id")
    strategy = STRATEGIES.get(sid)
    if strategy is None:
        raise KrakenError("EGeneral:Invalid arguments:Invalid strategy ID")
    return strategy


def _amount(p: dict[str, Any], strategy: Strategy) -> Decimal:
    amount = opt_dec(p, "amount")
    if amount is None or amount <= 0 or decimals_of(amount) > ASSETS[strategy.asset].decimals:
        raise invalid("amount")
    if amount < strategy.min_alloc:
        raise KrakenError("EEarnings:Below min:(De)allocation operation amount less than minimum")
    return amount


def strategies(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("ascending", "asset", "cursor", "limit", "lock_type"))
    asset = opt_str(ctx.params, "asset")
    locks = str_list(ctx.params, "lock_type")
    limit = opt_int(ctx.params, "limit") or 100
    items = []
    for strategy in STRATEGIES.values():
        if (
            asset
            and _wire_asset(strategy.asset) != asset.upper()
            and strategy.asset != asset.upper()
        ):
            continue
        if locks and strategy.lock not in locks:
            continue
        lock: dict[str, Any] = {"type": strategy.lock, "payout_frequency": strategy.payout_s}
        if strategy.lock == "bonded":
            lock.update(
                {
                    "bonding_period": strategy.bonding_s,
                    "bonding_period_variable": False,
                    "bonding_rewards": False,
                    "unbonding_period": strategy.unbonding_s,
                    "unbonding_period_variable": False,
                    "unbonding_rewards": False,
                    "exit_queue_period": 0,
                }
            )
        items.append(
            {
                "id": strategy.id,
                "asset": _wire_asset(strategy.asset),
                "lock_type": lock,
                "apr_estimate": {
                    "low": fmt(strategy.apr_low, 4),
                    "high": fmt(strategy.apr_high, 4),
                },
                "user_min_allocation": format(strategy.min_alloc, "f"),
                "allocation_fee": "0.0000",
                "deallocation_fee": "0.0000",
                "auto_compound": {"type": "enabled"},
                "yield_source": {"type": "staking"},
                "can_allocate": True,
                "can_deallocate": True,
                "allocation_restriction_info": [],
            }
        )
    if opt_bool(ctx.params, "ascending"):
        items.reverse()
    return {"items": items[:limit], "next_cursor": None}


def allocations(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("ascending", "converted_asset", "hide_zero_allocations"))
    engine = ctx.engine
    accrue(engine, ctx.acct, engine.now())
    conv_name = opt_str(ctx.params, "converted_asset") or "USD"
    conv = None
    for a in ASSETS.values():
        if conv_name.upper() in (a.id, a.altname, a.ws):
            conv = a
    if conv is None:
        raise KrakenError("EQuery:Unknown asset")
    hide = opt_bool(ctx.params, "hide_zero_allocations")
    rate_conv = engine.balance_usd(ctx.acct, conv.id, Decimal(1)) or Decimal(1)
    items = []
    total_alloc = ZERO
    total_rew = ZERO
    sids = set(ctx.acct.earn) | set(ctx.acct.earn_pending)
    for sid in sorted(sids):
        strategy = STRATEGIES[sid]
        allocated = ctx.acct.earn.get(sid, ZERO)
        reward = ctx.acct.earn_rewards.get(sid, ZERO)
        pend = ctx.acct.earn_pending.get(sid)
        if hide and not allocated and not pend:
            continue
        px = engine.balance_usd(ctx.acct, strategy.asset, Decimal(1)) / rate_conv
        places = ASSETS[strategy.asset].decimals

        def pair_amt(x: Decimal, places: int = places, px: Decimal = px) -> dict[str, str]:
            return {"native": fmt(x, places), "converted": fmt(x * px, 4)}

        amount_allocated: dict[str, Any] = {"total": pair_amt(allocated + reward)}
        if pend and pend["type"] == "allocate":
            amount_allocated["pending"] = pair_amt(pend["amount"])
        if pend and pend["type"] == "deallocate" and strategy.lock == "bonded":
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
        now = engine.now()
        period_start = now - (now % strategy.payout_s)
        items.append(
            {
                "strategy_id": sid,
                "native_asset": _wire_asset(strategy.asset),
                "amount_allocated": amount_allocated,
                "total_rewarded": pair_amt(reward),
                "payout": {
                    "accumulated_reward": pair_amt(reward),
                    "estimated_reward": pair_amt(
                        allocated * strategy.apr / 100 * Decimal(strategy.payout_s) / YEAR
                    ),
                    "period_start": rfc3339_s(period_start),
                    "period_end": rfc3339_s(period_start + strategy.payout_s),
                },
            }
        )
        total_alloc += (allocated + reward) * px
        total_rew += reward * px
    if not opt_bool(ctx.params, "ascending"):
        items.reverse()
    return {
        "converted_asset": conv.altname,
        "total_allocated": fmt(total_alloc, 4),
        "total_rewarded": fmt(total_rew, 4),
        "items": items,
    }


def _busy(acct: Account, strategy: Strategy) -> None:
    if strategy.id in acct.earn_pending:
        raise KrakenError(
            "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
        )


def make_allocate(delay_getter: Any) -> Handler:
    def allocate(ctx: Ctx) -> Any:
        check_known(ctx.params, allow("amount", "strategy_id"))
        strategy = _strategy(ctx.params)
        amount = _amount(ctx.params, strategy)
        _busy(ctx.acct, strategy)
        if ctx.acct.available(strategy.asset) < amount:
            raise KrakenError(
                "EEarnings:Insufficient funds:Insufficient funds to complete the "
                "(de)allocation request"
            )
        now = ctx.engine.now()
        accrue(ctx.engine, ctx.acct, now)
        ctx.engine.credit(
            ctx.acct, strategy.asset, -amount, "earn", "allocation", ctx.engine.ids.kid("E")
        )
        ctx.acct.earn_pending[strategy.id] = {
            "type": "allocate",
            "amount": amount,
            "created": now,
            "done_at": now + float(delay_getter()) + strategy.bonding_s,
        }
        return True

    return allocate


def make_deallocate(delay_getter: Any) -> Handler:
    def deallocate(ctx: Ctx) -> Any:
        check_known(ctx.params, allow("amount", "strategy_id"))
        strategy = _strategy(ctx.params)
        amount = _amount(ctx.params, strategy)
        _busy(ctx.acct, strategy)
        now = ctx.engine.now()
        accrue(ctx.engine, ctx.acct, now)
        # Rewards auto-compound into the allocation, so they can be withdrawn too.
        reward = ctx.acct.earn_rewards.pop(strategy.id, ZERO)
        ctx.acct.earn[strategy.id] = ctx.acct.earn.get(strategy.id, ZERO) + reward
        if ctx.acct.earn.get(strategy.id, ZERO) < amount:
            raise KrakenError(
                "EEarnings:Insufficient funds:Insufficient funds to complete the "
                "(de)allocation request"
            )
        ctx.acct.earn_pending[strategy.id] = {
            "type": "deallocate",
            "amount": amount,
            "created": now,
            "done_at": now + float(delay_getter()) + strategy.unbonding_s,
        }
        return True

    return deallocate


def _status(kind: str) -> Handler:
    def status(ctx: Ctx) -> Any:
        check_known(ctx.params, allow("strategy_id"))
        strategy = _strategy(ctx.params)
        operation = ctx.acct.earn_pending.get(strategy.id)
        return {"pending": bool(operation and operation["type"] == kind)}

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
