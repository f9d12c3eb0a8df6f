"""Earn REST endpoints: Strategies, Allocations, Allocate/Deallocate and their status calls."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import ASSETS, fmt
from apps.sandbox.params import check_known, opt_bool, opt_dec, opt_int, opt_str, str_list
from apps.sandbox.private import Ctx, Handler, allow
from apps.sandbox.util import decimals_of, rfc3339_s

from .catalogue import STRATEGIES, Strategy, tier_allows, wire_asset
from .holdings import (
    YEAR,
    ZERO,
    accrue,
    allocated_of,
    committed,
    held_strategies,
    locks_of,
    pending_of,
    total_of,
)

# Kraken's strings (FACTS §2.2, FUNDING-EARN.md) …
INVALID_STRATEGY = "EGeneral:Invalid arguments:Invalid strategy ID"
BELOW_MIN = "EEarnings:Below min:(De)allocation operation amount less than minimum"
BUSY = "EEarnings:Busy:Another (de)allocation for the same strategy is in progress"
TIER_TOO_LOW = "EEarnings:Permission denied:The user's tier is not high enough"
INSUFFICIENT = (
    "EEarnings:Insufficient funds:Insufficient funds to complete the (de)allocation request"
)
ABOVE_USER_CAP = "EEarnings:Above max:The allocation exceeds user limit for the strategy"
ABOVE_TOTAL_CAP = "EEarnings:Above max:The allocation exceeds the total strategy limit"
# … and the sandbox's guess of the same shape for a strategy that does not take the
# operation at all (auto-earn ``flex``; deallocating a ``timed`` lock): not documented.
NOT_ALLOWED = "EEarnings:Permission denied:The strategy does not allow this operation"
DEFAULT_FAILURE = "EGeneral:Internal error"


def _strategy(params: dict[str, Any]) -> Strategy:
    strategy = STRATEGIES.get(str(params.get("strategy_id") or ""))
    if strategy is None:
        raise KrakenError(INVALID_STRATEGY)
    return strategy


def _amount(params: dict[str, Any], strategy: Strategy) -> Decimal:
    amount = opt_dec(params, "amount")
    if amount is None or amount <= 0 or decimals_of(amount) > ASSETS[strategy.asset].decimals:
        raise invalid("amount")
    if amount < strategy.min_alloc:
        raise KrakenError(BELOW_MIN)
    return amount


def _tier(ctx: Ctx) -> str:
    return ctx.engine.tier_of(ctx.acct).name


def _lock_type(strategy: Strategy) -> dict[str, Any]:
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
    elif strategy.lock == "timed":
        lock["duration_months"] = round(strategy.duration_s / (30.4375 * 86400))
    return lock


def strategies(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("ascending", "asset", "cursor", "limit", "lock_type"))
    asset = opt_str(ctx.params, "asset")
    locks = str_list(ctx.params, "lock_type")
    limit = opt_int(ctx.params, "limit") or 100
    tier = _tier(ctx)
    items = []
    for strategy in STRATEGIES.values():
        if asset and asset.upper() not in (wire_asset(strategy.asset), strategy.asset):
            continue
        if locks and strategy.lock not in locks:
            continue
        restrictions = [] if tier_allows(tier, strategy) else ["tier"]
        item: dict[str, Any] = {
            "id": strategy.id,
            "asset": wire_asset(strategy.asset),
            "lock_type": _lock_type(strategy),
            "apr_estimate": {"low": fmt(strategy.apr_low, 4), "high": fmt(strategy.apr_high, 4)},
            "user_min_allocation": format(strategy.min_alloc, "f"),
            "allocation_fee": "0.0000",
            "deallocation_fee": "0.0000",
            "auto_compound": {"type": "enabled"},
            "yield_source": {"type": "staking"},
            "can_allocate": strategy.allocatable and not restrictions,
            "can_deallocate": strategy.deallocatable,
            "allocation_restriction_info": restrictions,
        }
        if strategy.user_cap is not None:
            item["user_cap"] = format(strategy.user_cap, "f")
        items.append(item)
    if opt_bool(ctx.params, "ascending"):
        items.reverse()
    # Kraken pages with an opaque cursor (FACTS §4.5 shows "next_cursor":"2"): here the
    # position of the next page's first item, and null on the last page.
    cursor = opt_str(ctx.params, "cursor") or "0"
    start = int(cursor) if cursor.isdigit() else 0
    page = items[start : start + max(limit, 1)]
    more = start + len(page) < len(items)
    return {"items": page, "next_cursor": str(start + len(page)) if more else None}


def allocations(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("ascending", "converted_asset", "hide_zero_allocations"))
    engine = ctx.engine
    acct = ctx.acct
    accrue(engine, acct, engine.now())
    conv_name = (opt_str(ctx.params, "converted_asset") or "USD").upper()
    conv = next((a for a in ASSETS.values() if conv_name in (a.id, a.altname, a.ws)), None)
    if conv is None:
        raise KrakenError("EQuery:Unknown asset")
    hide = opt_bool(ctx.params, "hide_zero_allocations")
    rate_conv = engine.balance_usd(acct, conv.id, Decimal(1)) or Decimal(1)
    items = []
    total_alloc = ZERO
    total_rew = ZERO
    for strategy in held_strategies(acct):
        total = total_of(acct, strategy)
        if hide and not total:
            continue
        price = engine.balance_usd(acct, strategy.asset, Decimal(1)) / rate_conv
        places = ASSETS[strategy.asset].decimals

        def amount(x: Decimal, places: int = places, price: Decimal = price) -> dict[str, str]:
            return {"native": fmt(x, places), "converted": fmt(x * price, 4)}

        def part(state: str, sid: str = strategy.id) -> dict[str, Any]:
            locks = locks_of(acct, sid, state)
            return {
                **amount(sum((lock["amount"] for lock in locks), ZERO)),
                "allocation_count": len(locks),
                "allocations": [
                    {
                        **amount(lock["amount"]),
                        "created_at": rfc3339_s(lock["created"]),
                        "expires": rfc3339_s(lock["expires"]),
                    }
                    for lock in locks
                ],
            }

        allocated = allocated_of(acct, strategy)
        reward = acct.earn_rewards.get(strategy.id, ZERO)
        now = engine.now()
        period_start = now - (now % strategy.payout_s)
        items.append(
            {
                "strategy_id": strategy.id,
                "native_asset": wire_asset(strategy.asset),
                "amount_allocated": {
                    "bonding": part("bonding"),
                    "exit_queue": part("exit_queue"),
                    "unbonding": part("unbonding"),
                    "allocated": amount(allocated + reward),
                    "pending": amount(pending_of(acct, strategy.id)),
                    "total": amount(total),
                },
                "total_rewarded": amount(reward),
                "payout": {
                    "accumulated_reward": amount(reward),
                    "estimated_reward": amount(
                        allocated * strategy.apr / 100 * Decimal(strategy.payout_s) / YEAR
                    ),
                    "period_start": rfc3339_s(period_start),
                    "period_end": rfc3339_s(period_start + strategy.payout_s),
                },
            }
        )
        total_alloc += total * price
        total_rew += reward * price
    if not opt_bool(ctx.params, "ascending"):
        items.reverse()
    return {
        "converted_asset": conv.altname,
        "total_allocated": fmt(total_alloc, 4),
        "total_rewarded": fmt(total_rew, 4),
        "items": items,
    }


def _begin(ctx: Ctx, strategy: Strategy, kind: str, amount: Decimal, delay: float) -> None:
    now = ctx.engine.now()
    ctx.acct.earn_failures.pop(strategy.id, None)  # a new operation replaces the old verdict
    ctx.acct.earn_pending[strategy.id] = {
        "type": kind,
        "amount": amount,
        "created": now,
        "done_at": now + delay,
    }


def make_allocate(delay_getter: Callable[[], float]) -> Handler:
    def allocate(ctx: Ctx) -> Any:
        check_known(ctx.params, allow("amount", "strategy_id"))
        strategy = _strategy(ctx.params)
        if not strategy.allocatable:
            raise KrakenError(NOT_ALLOWED)
        if not tier_allows(_tier(ctx), strategy):
            raise KrakenError(TIER_TOO_LOW)
        amount = _amount(ctx.params, strategy)
        if strategy.id in ctx.acct.earn_pending:
            raise KrakenError(BUSY)
        engine = ctx.engine
        if strategy.user_cap is not None and (
            total_of(ctx.acct, strategy) + amount > strategy.user_cap
        ):
            raise KrakenError(ABOVE_USER_CAP)
        if strategy.total_cap is not None and committed(engine, strategy) + amount > (
            strategy.total_cap
        ):
            raise KrakenError(ABOVE_TOTAL_CAP)
        if (
            ctx.acct.balances.get(strategy.asset, ZERO) - ctx.acct.holds.get(strategy.asset, ZERO)
            < amount
        ):
            raise KrakenError(INSUFFICIENT)
        accrue(engine, ctx.acct, engine.now())
        engine.credit(ctx.acct, strategy.asset, -amount, "earn", "allocation", engine.ids.kid("E"))
        _begin(ctx, strategy, "allocate", amount, float(delay_getter()))
        return True

    return allocate


def make_deallocate(delay_getter: Callable[[], float]) -> Handler:
    def deallocate(ctx: Ctx) -> Any:
        check_known(ctx.params, allow("amount", "strategy_id"))
        strategy = _strategy(ctx.params)
        if not strategy.deallocatable:
            raise KrakenError(NOT_ALLOWED)
        amount = _amount(ctx.params, strategy)
        if strategy.id in ctx.acct.earn_pending:
            raise KrakenError(BUSY)
        accrue(ctx.engine, ctx.acct, ctx.engine.now())
        # Rewards auto-compound into the allocation, so they can be withdrawn too.
        reward = ctx.acct.earn_rewards.pop(strategy.id, ZERO)
        ctx.acct.earn[strategy.id] = ctx.acct.earn.get(strategy.id, ZERO) + reward
        if ctx.acct.earn.get(strategy.id, ZERO) < amount:
            raise KrakenError(INSUFFICIENT)
        _begin(ctx, strategy, "deallocate", amount, float(delay_getter()))
        return True

    return deallocate


def _status(kind: str) -> Handler:
    def status(ctx: Ctx) -> Any:
        """``pending`` while the operation is in flight; a failure in the background is
        answered here as an error until the next operation on the strategy."""
        check_known(ctx.params, allow("strategy_id"))
        strategy = _strategy(ctx.params)
        operation = ctx.acct.earn_pending.get(strategy.id)
        if operation is not None and operation["type"] == kind:
            return {"pending": True}
        failure = ctx.acct.earn_failures.get(strategy.id)
        if failure is not None and failure["type"] == kind:
            raise KrakenError(failure["error"])
        return {"pending": False}

    return status


def earn_handlers(delay_getter: Callable[[], float]) -> dict[str, Handler]:
    return {
        "Earn/Strategies": strategies,
        "Earn/Allocations": allocations,
        "Earn/Allocate": make_allocate(delay_getter),
        "Earn/Deallocate": make_deallocate(delay_getter),
        "Earn/AllocateStatus": _status("allocate"),
        "Earn/DeallocateStatus": _status("deallocate"),
    }
