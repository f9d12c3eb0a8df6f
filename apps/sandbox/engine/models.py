"""Orders, fills and accounts: the engine's plain data, plus the constants and rounding
helpers every engine module shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

ZERO = Decimal(0)
ORDER_TYPES = frozenset(
    {
        "market",
        "limit",
        "iceberg",
        "stop-loss",
        "take-profit",
        "stop-loss-limit",
        "take-profit-limit",
        "trailing-stop",
        "trailing-stop-limit",
        "settle-position",
    }
)
TRIGGERED_TYPES = frozenset(
    {
        "stop-loss",
        "take-profit",
        "stop-loss-limit",
        "take-profit-limit",
        "trailing-stop",
        "trailing-stop-limit",
    }
)
OFLAGS = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})
CL_ORD_ID_MAX = 36
TIMES_IN_FORCE = ("GTC", "IOC", "GTD", "FOK")  # FOK since 12 May 2026 (change log)
FOK_UNFILLED = "Unfilled FOK order"  # cancel reason; Kraken's wording is not documented
# The trading engine's modes (SystemStatus, the WS ``status`` channel).
SYSTEM_STATUSES = ("online", "maintenance", "cancel_only", "post_only")
# Per-pair modes (AssetPairs ``status``, the WS ``instrument`` channel's pair ``status``).
PAIR_STATUSES = (
    "online",
    "cancel_only",
    "post_only",
    "limit_only",
    "reduce_only",
    "maintenance",
    "delisted",
    "work_in_progress",
)
# Pair modes in which resting orders still match ("cancel_only"/"post_only": "No order
# matching will occur", as for the system modes of the same names).
MATCHING_PAIR_STATUSES = frozenset({"online", "limit_only", "reduce_only"})
# What a ``limit_only`` pair admits.
LIMIT_ONLY_TYPES = frozenset({"limit", "iceberg"})
MPP_PCT = Decimal(1)  # market price protection band (assumed; Kraken's is not public here)
MAX_MARKET_STEP = 60.0  # simulated seconds of market movement per tick, at most


_QUANTS: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(19)}


def quantize_down(value: Decimal, places: int) -> Decimal:
    """``value`` truncated to ``places`` decimals (amounts a user receives or may spend)."""
    return value.quantize(_QUANTS.get(places) or Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def quantize_up(value: Decimal, places: int) -> Decimal:
    """``value`` rounded up to ``places`` decimals (fees and reservations, never short)."""
    return value.quantize(_QUANTS.get(places) or Decimal(1).scaleb(-places), rounding=ROUND_UP)


@dataclass(slots=True)
class Fill:
    trade_id: str
    price: Decimal
    qty: Decimal


@dataclass
class Order:
    txid: str
    account_id: str
    pair: str
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal | None  # limit price (limit/iceberg) or trigger (stop family)
    price2: Decimal | None  # limit price for *-limit
    opentm: float
    seq: int
    oflags: list[str] = field(default_factory=list)
    timeinforce: str = "GTC"
    starttm: float = 0.0
    expiretm: float = 0.0
    userref: int | None = None
    cl_ord_id: str | None = None
    display_vol: Decimal | None = None
    close: dict[str, str] | None = None
    trigger: str = "last"
    stptype: str = "cancel-newest"
    status: str = "pending"
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    closetm: float = 0.0
    reason: str | None = None
    misc: list[str] = field(default_factory=list)
    trades: list[str] = field(default_factory=list)
    hold_asset: str = ""
    hold: Decimal = ZERO
    triggered: bool = False
    # Trailing stops: offset spec ("+50" / "+1%") and the running extreme price.
    trail_offset: str | None = None
    trail_extreme: Decimal | None = None
    amended_at: float = 0.0
    amends: list[dict[str, Any]] = field(default_factory=list)
    viqc: bool = False
    parent_txid: str | None = None
    limit_price_type: str = "static"

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.vol_exec

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "open")

    def resting_limit(self) -> Decimal | None:
        """Limit price while live on the book (None for untriggered stops/market)."""
        if self.ordertype in ("limit", "iceberg"):
            return self.price
        if self.triggered and self.ordertype.endswith("-limit"):
            return self.price2
        return None


@dataclass
class Account:
    id: str
    tier: str
    balances: dict[str, Decimal] = field(default_factory=dict)
    holds: dict[str, Decimal] = field(default_factory=dict)
    parent: str | None = None
    iiban: str = ""  # Kraken's account id; AccountTransfer's from/to accept it
    username: str = ""
    email: str = ""
    volume_usd: Decimal = ZERO
    orders: dict[str, Order] = field(default_factory=dict)
    open_ids: list[str] = field(default_factory=list)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledgers: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancel_after: float = 0.0
    withdraw_addresses: list[dict[str, Any]] = field(default_factory=list)
    deposit_addresses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    earn: dict[str, Decimal] = field(default_factory=dict)  # strategy_id → allocated, earning
    earn_rewards: dict[str, Decimal] = field(default_factory=dict)
    # The (de)allocation in flight per strategy: one at a time (EEarnings:Busy).
    earn_pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Allocation parts with an end: {"sid","state": bonding|unbonding|locked,"amount",
    # "created","expires"}. Bonding and unbonding are states, not operations in flight.
    earn_locks: list[dict[str, Any]] = field(default_factory=list)
    # Last (de)allocation per strategy that failed in the background: reported by the
    # status call until the next operation on that strategy.
    earn_failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    earn_fail_next: dict[str, str] = field(default_factory=dict)  # control API: sid → error
    auto_earn: dict[str, Decimal] = field(default_factory=dict)  # asset → flex (spendable)
    earn_accrued_at: float = 0.0
    ws_tokens: dict[str, float] = field(default_factory=dict)

    def available(self, asset: str) -> Decimal:
        """Spendable now: the spot wallet less holds, plus auto-earn (``flex``) funds, which
        Kraken lets you spend (they leave the flex wallet as they are used)."""
        return (
            self.balances.get(asset, ZERO)
            + self.auto_earn.get(asset, ZERO)
            - self.holds.get(asset, ZERO)
        )


Listener = Callable[[str, str, dict[str, Any]], None]
