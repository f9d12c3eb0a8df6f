"""What each account holds in Earn, and how it moves with the sandbox clock: operations in
flight settle after the processing delay; bonding, unbonding and timed locks are states of
the allocation with an end, so they never keep a strategy busy."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from apps.sandbox.engine import Account, Engine

from .catalogue import STRATEGIES, Strategy

ZERO = Decimal(0)
YEAR = Decimal(365 * 86400)


def allocated_of(acct: Account, strategy: Strategy) -> Decimal:
    """The earning amount: auto-earn funds for ``flex``, the allocation otherwise."""
    if strategy.lock == "flex":
        return acct.auto_earn.get(strategy.asset, ZERO)
    return acct.earn.get(strategy.id, ZERO)


def locks_of(acct: Account, sid: str, state: str) -> list[dict[str, Any]]:
    return [lock for lock in acct.earn_locks if lock["sid"] == sid and lock["state"] == state]


def pending_of(acct: Account, sid: str) -> Decimal:
    """The operation in flight: positive while allocating, negative while deallocating."""
    operation = acct.earn_pending.get(sid)
    if operation is None:
        return ZERO
    amount: Decimal = operation["amount"]
    return amount if operation["type"] == "allocate" else -amount


def in_transit(acct: Account, strategy: Strategy) -> Decimal:
    """Funds that left spot but are not (yet, or any more) earning: bonding, unbonding and
    an allocation still processing."""
    parts = locks_of(acct, strategy.id, "bonding") + locks_of(acct, strategy.id, "unbonding")
    return sum((lock["amount"] for lock in parts), ZERO) + max(pending_of(acct, strategy.id), ZERO)


def total_of(acct: Account, strategy: Strategy) -> Decimal:
    return (
        allocated_of(acct, strategy)
        + acct.earn_rewards.get(strategy.id, ZERO)
        + in_transit(acct, strategy)
    )


def committed(engine: Engine, strategy: Strategy) -> Decimal:
    """Everything allocated (or on its way) to ``strategy`` across accounts: the total cap."""
    return sum(
        (
            allocated_of(acct, strategy)
            + sum((lock["amount"] for lock in locks_of(acct, strategy.id, "bonding")), ZERO)
            + max(pending_of(acct, strategy.id), ZERO)
            for acct in engine.accounts.values()
        ),
        ZERO,
    )


def held_strategies(acct: Account) -> Iterator[Strategy]:
    for strategy in STRATEGIES.values():
        if total_of(acct, strategy) or pending_of(acct, strategy.id):
            yield strategy


def earn_wallets(acct: Account) -> dict[str, dict[str, Decimal]]:
    """asset → Earn wallet id → amount (rewards included), as the WS ``balances`` channel
    shows them."""
    out: dict[str, dict[str, Decimal]] = {}
    for strategy in held_strategies(acct):
        wallets = out.setdefault(strategy.asset, {})
        wallets[strategy.wallet_id] = wallets.get(strategy.wallet_id, ZERO) + total_of(
            acct, strategy
        )
    return out


def earn_by_asset(acct: Account) -> dict[str, Decimal]:
    """asset → all Earn funds (the legacy ``.F`` balance)."""
    return {asset: sum(w.values(), ZERO) for asset, w in earn_wallets(acct).items()}


def wallet_balance(acct: Account, strategy: Strategy) -> Decimal:
    return earn_wallets(acct).get(strategy.asset, {}).get(strategy.wallet_id, ZERO)


def accrue(engine: Engine, acct: Account, now: float) -> None:
    """Accrue rewards linearly since the last accrual (APR midpoint) on earning amounts;
    bonding and unbonding funds earn nothing (``bonding_rewards``/``unbonding_rewards``
    false)."""
    elapsed = Decimal(repr(max(0.0, now - acct.earn_accrued_at))) if acct.earn_accrued_at else ZERO
    acct.earn_accrued_at = now
    if not elapsed:
        return
    for strategy in STRATEGIES.values():
        amount = allocated_of(acct, strategy)
        if amount > 0:
            reward = amount * strategy.apr / 100 * elapsed / YEAR
            acct.earn_rewards[strategy.id] = acct.earn_rewards.get(strategy.id, ZERO) + reward


def _to_spot(engine: Engine, acct: Account, strategy: Strategy, amount: Decimal) -> None:
    refid = engine.ids.kid("E")
    engine.credit(acct, strategy.asset, amount, "earn", "deallocation", refid)
    engine.earn_wallet_entry(
        acct,
        strategy.asset,
        -amount,
        strategy.wallet_id,
        "deallocation",
        refid,
        wallet_balance(acct, strategy),
    )


def _finish_allocation(
    engine: Engine, acct: Account, strategy: Strategy, amount: Decimal, now: float
) -> None:
    if strategy.lock == "bonded" and strategy.bonding_s:
        acct.earn_locks.append(_lock(strategy, "bonding", amount, now, now + strategy.bonding_s))
    else:
        acct.earn[strategy.id] = acct.earn.get(strategy.id, ZERO) + amount
        if strategy.lock == "timed":
            acct.earn_locks.append(
                _lock(strategy, "locked", amount, now, now + strategy.duration_s)
            )
    engine.earn_wallet_entry(
        acct,
        strategy.asset,
        amount,
        strategy.wallet_id,
        "allocation",
        engine.ids.kid("E"),
        wallet_balance(acct, strategy),
    )


def _lock(
    strategy: Strategy, state: str, amount: Decimal, start: float, end: float
) -> dict[str, Any]:
    return {"sid": strategy.id, "state": state, "amount": amount, "created": start, "expires": end}


def settle(engine: Engine) -> None:
    """Operations whose processing time has passed complete (or fail, reported by the status
    call); bonding, unbonding and timed locks that reached their end move on."""
    now = engine.now()
    for acct in engine.accounts.values():
        if not (acct.earn or acct.earn_pending or acct.earn_locks or acct.auto_earn):
            continue
        accrue(engine, acct, now)
        for sid, operation in list(acct.earn_pending.items()):
            if operation["done_at"] > now:
                continue
            del acct.earn_pending[sid]
            strategy = STRATEGIES[sid]
            amount: Decimal = operation["amount"]
            # Locks start when processing ended, even if the clock jumped past that.
            done: float = operation["done_at"]
            failure = acct.earn_fail_next.pop(sid, None)
            if failure is not None:
                acct.earn_failures[sid] = {"type": operation["type"], "error": failure}
                if operation["type"] == "allocate":
                    refid = engine.ids.kid("E")
                    engine.credit(acct, strategy.asset, amount, "earn", "allocation", refid)
                continue
            if operation["type"] == "allocate":
                _finish_allocation(engine, acct, strategy, amount, done)
            else:
                acct.earn[sid] = acct.earn.get(sid, ZERO) - amount
                if strategy.unbonding_s:
                    acct.earn_locks.append(
                        _lock(strategy, "unbonding", amount, done, done + strategy.unbonding_s)
                    )
                else:
                    _to_spot(engine, acct, strategy, amount)
        for lock in [lock for lock in acct.earn_locks if lock["expires"] <= now]:
            acct.earn_locks.remove(lock)
            strategy = STRATEGIES[lock["sid"]]
            if lock["state"] == "bonding":
                acct.earn[strategy.id] = acct.earn.get(strategy.id, ZERO) + lock["amount"]
            elif lock["state"] == "unbonding":
                _to_spot(engine, acct, strategy, lock["amount"])
            else:  # a timed allocation ran its course: principal and rewards go back
                acct.earn[strategy.id] = acct.earn.get(strategy.id, ZERO) - lock["amount"]
                amount = lock["amount"]
                if not locks_of(acct, strategy.id, "locked"):
                    amount += acct.earn_rewards.pop(strategy.id, ZERO)
                _to_spot(engine, acct, strategy, amount)
