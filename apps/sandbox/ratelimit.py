"""Kraken's two rate limiters (FACTS §3): the REST call counter and the per-pair
matching-engine counter, both as decaying counters driven by the sandbox clock."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    api_max: Decimal
    api_decay: Decimal  # per second
    trade_max: Decimal
    trade_decay: Decimal
    max_open_per_pair: int


TIERS: dict[str, Tier] = {
    "starter": Tier("starter", Decimal(15), Decimal("0.33"), Decimal(60), Decimal("1"), 60),
    "intermediate": Tier(
        "intermediate", Decimal(20), Decimal("0.5"), Decimal(125), Decimal("2.34"), 80
    ),
    "pro": Tier("pro", Decimal(20), Decimal("1"), Decimal(180), Decimal("3.75"), 225),
}

# Ledger/trade-history calls cost 2; AddOrder/CancelOrder (and the other trading calls)
# run on the matching-engine limiter instead, so they cost nothing here.
REST_COST: dict[str, int] = {"Ledgers": 2, "QueryLedgers": 2, "TradesHistory": 2}
REST_FREE: frozenset[str] = frozenset(
    {
        "AddOrder",
        "AddOrderBatch",
        "AmendOrder",
        "EditOrder",
        "CancelOrder",
        "CancelOrderBatch",
        "CancelAll",
        "CancelAllOrdersAfter",
    }
)


class DecayCounter:
    __slots__ = ("last", "value")

    def __init__(self, value: Decimal = ZERO, last: float = 0.0) -> None:
        self.value = value
        self.last = last

    def current(self, now: float, decay: Decimal) -> Decimal:
        if now > self.last:
            self.value = max(Decimal(0), self.value - decay * Decimal(repr(now - self.last)))
            self.last = now
        return self.value


class RestLimiter:
    def __init__(self) -> None:
        self.counters: dict[str, DecayCounter] = {}

    def charge(self, key: str, method: str, tier: Tier, now: float) -> bool:
        """Charge one call; False means ``EAPI:Rate limit exceeded``."""
        if method in REST_FREE:
            return True
        cost = Decimal(REST_COST.get(method, 1))
        c = self.counters.setdefault(key, DecayCounter(Decimal(0), now))
        value = c.current(now, tier.api_decay)
        if value + cost > tier.api_max:
            return False
        c.value = value + cost
        return True

    def value(self, key: str, tier: Tier, now: float) -> Decimal:
        c = self.counters.get(key)
        return c.current(now, tier.api_decay) if c else Decimal(0)


# Age brackets (upper bound, exclusive, seconds) → decaying penalty. At exactly 5 s the
# next bracket applies (KSDK order_age_cost.rs).
_BRACKETS: tuple[float, ...] = (5, 10, 15, 45, 90, 300)
AMEND_COST: tuple[int, ...] = (3, 2, 1, 0, 0, 0)
EDIT_COST: tuple[int, ...] = (6, 5, 4, 2, 1, 0)
CANCEL_COST: tuple[int, ...] = (8, 6, 5, 4, 2, 1)


def age_cost(table: tuple[int, ...], age: float) -> int:
    for upper, cost in zip(_BRACKETS, table, strict=True):
        if age < upper:
            return cost
    return 0


class TradingLimiter:
    """Per (account, pair) counter shared by REST and WS trading."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], DecayCounter] = {}

    def add(self, account: str, pair: str, amount: Decimal, tier: Tier, now: float) -> bool:
        """Add ``amount``; False when the counter now exceeds the tier threshold."""
        c = self.counters.setdefault((account, pair), DecayCounter(Decimal(0), now))
        value = c.current(now, tier.trade_decay)
        if value + amount > tier.trade_max:
            return False
        c.value = value + amount
        return True

    def value(self, account: str, pair: str, tier: Tier, now: float) -> Decimal:
        c = self.counters.get((account, pair))
        return c.current(now, tier.trade_decay) if c else Decimal(0)
