"""Per-key budgets in Redis that mirror Kraken's decaying counters, so callers *wait* for budget
instead of being rejected (FACTS §3).

Two counters are modelled:

* the REST call counter per API key: +1 per call, +2 for Ledgers/QueryLedgers/TradesHistory,
  trading calls excluded; max 15/20/20 and decay 0.33/0.5/1 per second by tier (§3.1);
* the matching-engine counter per pair: AddOrder +1, AmendOrder +1 plus an age penalty,
  EditOrder +1 plus a larger age penalty, CancelOrder an age penalty only, batches scaled by the
  number of orders; threshold 60/125/180, decay 1/2.34/3.75 per second (§3.2). The age of an
  order is known for orders this client placed (remembered in Redis for 300 s, after which every
  penalty is 0); for orders it did not place the penalty cannot be known and is taken as 0.

Each counter is kept where Kraken keeps it: the REST counter per API key, the trading counter
per ACCOUNT and pair (two keys on one account share it, so charging per key would let them
overrun Kraken's). A key does not say which account it belongs to; the caller says it with
``account_ref`` (the vault's KrakenAccount, apps.orgs: ``acct:<id>``). Without one, the key is
taken as its own account (exact when one key is used per account). The tier, too, is the
account's (its master's), not the deployment's. Order ages are remembered per account as well:
any key on the account may cancel an order another placed.

The model is a leaky bucket evaluated inside Redis with Redis' clock, atomically for all the
counters a call touches: a call is admitted only when *every* counter has room (``level + cost
<= max - headroom``), and then all are charged together. Callers charge right before sending,
while they hold the key's sequencer (see nonce.py), so Kraken sees the same calls in the same
order, each shifted by its network delay. A constant delay shifts both counters alike; only
variation in the delay (jitter) can put Kraken's count above the model's, by at most
decay x jitter, which the one unit of headroom absorbs (a full second of jitter at the fastest
decay). If Kraken still says the limit was hit, the model is set to full (mark_exhausted).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from apps.kraken import naming
from apps.kraken.nonce import key_ref, lua_script, redis_client

if TYPE_CHECKING:
    from apps.kraken.nonce import RedisClient


@dataclass(frozen=True, slots=True)
class TierLimits:
    name: str
    rest_max: float
    rest_decay: float
    trade_max: float
    trade_decay: float


TIERS: dict[str, TierLimits] = {
    "starter": TierLimits("starter", 15, 0.33, 60, 1.0),
    "intermediate": TierLimits("intermediate", 20, 0.5, 125, 2.34),
    "pro": TierLimits("pro", 20, 1.0, 180, 3.75),
}

HEADROOM = 1.0

REST_COST: dict[str, int] = {"Ledgers": 2, "QueryLedgers": 2, "TradesHistory": 2}
# These run on the matching-engine limiter instead of the REST counter.
TRADING_METHODS: frozenset[str] = frozenset(
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

# Age brackets (exclusive upper bounds, seconds); at exactly 5 s the next bracket applies.
_BRACKETS: tuple[float, ...] = (5, 10, 15, 45, 90, 300)
AMEND_PENALTY: tuple[int, ...] = (3, 2, 1, 0, 0, 0)
EDIT_PENALTY: tuple[int, ...] = (6, 5, 4, 2, 1, 0)
CANCEL_PENALTY: tuple[int, ...] = (8, 6, 5, 4, 2, 1)
ORDER_MEMORY_SECONDS = 300


def age_penalty(table: tuple[int, ...], age: float) -> int:
    for upper, cost in zip(_BRACKETS, table, strict=True):
        if age < upper:
            return cost
    return 0


def tier_limits(tier: str) -> TierLimits:
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"Unknown Kraken tier {tier!r}; expected one of {sorted(TIERS)}") from None


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter to charge: Redis key, amount, capacity and decay per second."""

    key: str
    amount: float
    capacity: float
    decay: float


# ARGV[1] = 'take' | 'peek' | 'fill'; then per key: amount, capacity, decay.
# Returns the seconds to wait before every counter has room ("0" = admitted, for 'take').
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mode = ARGV[1]
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 + (i - 1) * 3])
  local cap = tonumber(ARGV[3 + (i - 1) * 3])
  local decay = tonumber(ARGV[4 + (i - 1) * 3])
  local st = redis.call('HMGET', key, 'level', 'ts')
  local level = tonumber(st[1]) or 0
  local ts = tonumber(st[2]) or now
  if now > ts then level = math.max(0, level - decay * (now - ts)) end
  levels[i] = level
  if mode == 'fill' then
    levels[i] = math.max(level, cap)
  else
    local over = level + amount - cap
    if over > 0 then wait = math.max(wait, over / decay) end
  end
end
if mode == 'peek' or (mode == 'take' and wait > 0) then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  local decay = tonumber(ARGV[4 + (i - 1) * 3])
  local level = levels[i]
  if mode == 'take' then level = level + tonumber(ARGV[2 + (i - 1) * 3]) end
  redis.call('HSET', key, 'level', tostring(level), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil(level / decay) + 60)
end
return '0'
"""


def _run(mode: str, charges: list[Charge], client: RedisClient | None) -> float:
    if not charges:
        return 0.0
    args: list[Any] = [mode]
    for c in charges:
        args.extend([repr(c.amount), repr(c.capacity), repr(c.decay)])
    result = lua_script(client or redis_client(), _BUCKET)(keys=[c.key for c in charges], args=args)
    return float(cast(str, result))


def try_take(charges: list[Charge], *, client: RedisClient | None = None) -> float:
    """Charge all counters if all have room and return 0; otherwise charge nothing and return
    the seconds until they would."""
    return _run("take", charges, client)


def peek(charges: list[Charge], *, client: RedisClient | None = None) -> float:
    """Seconds until all counters have room (0 if they have now); charges nothing."""
    return _run("peek", charges, client)


def mark_exhausted(charges: list[Charge], *, client: RedisClient | None = None) -> None:
    """Kraken said the limit was hit although the model had room (another program on the same
    key, or a lost Redis): raise the model to full so the next callers wait for the decay."""
    _run("fill", charges, client)


def wait_time_for_cost(level: float, cost: float, capacity: float, decay: float) -> float:
    """Pure form of the bucket rule, for tests and the benchmark's theoretical figures."""
    over = level + cost - capacity
    return max(0.0, over / decay)


# --- Which counters a call touches ---------------------------------------------------------


def account_scope(*, api_key: str, account_ref: str | None) -> str:
    """The scope of the per-account counters: the account when known, else the key itself."""
    return account_ref or f"key:{key_ref(api_key)}"


def _rest_key(api_key: str) -> str:
    return f"kraken:rate:rest:{key_ref(api_key)}"


def _trade_key(scope: str, symbol: str) -> str:
    return f"kraken:rate:trade:{scope}:{symbol}"


def _order_key(scope: str, ident: str) -> str:
    return f"kraken:order:{scope}:{ident}"


def _symbol(pair: object) -> str | None:
    if not isinstance(pair, str) or not pair:
        return None
    try:
        return naming.pair_symbol(pair)
    except ValueError:
        return None


def _idents(value: object) -> list[str]:
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.split(",")) if v]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and not isinstance(v, dict)]
    if isinstance(value, int):
        return [str(value)]
    return []


def _known_order(scope: str, ident: str, client: RedisClient) -> tuple[str, float] | None:
    raw = client.get(_order_key(scope, ident))
    if not raw:
        return None
    symbol, _, placed = raw.rpartition("|")
    return symbol, time.time() - float(placed)


def charges_for(
    *,
    api_key: str,
    tier: str,
    method: str,
    params: dict[str, Any],
    account_ref: str | None = None,
    client: RedisClient | None = None,
) -> list[Charge]:
    """The counters a private call would charge, with their costs. ``tier`` is the account's
    (its master's); ``account_ref`` names the account the key belongs to."""
    limits = tier_limits(tier)
    conn = client or redis_client()
    scope = account_scope(api_key=api_key, account_ref=account_ref)
    if method not in TRADING_METHODS:
        cost = REST_COST.get(method, 1)
        return [Charge(_rest_key(api_key), cost, limits.rest_max - HEADROOM, limits.rest_decay)]

    per_pair: dict[str, float] = {}

    def add(symbol: str | None, amount: float) -> None:
        if symbol and amount > 0:
            per_pair[symbol] = per_pair.get(symbol, 0.0) + amount

    if method == "AddOrder":
        add(_symbol(params.get("pair")), 1)
    elif method == "AddOrderBatch":
        orders = params.get("orders")
        count = len(orders) if isinstance(orders, list) else 1
        add(_symbol(params.get("pair")), count / 2)
    elif method in {"AmendOrder", "EditOrder"}:
        table = AMEND_PENALTY if method == "AmendOrder" else EDIT_PENALTY
        ident = params.get("txid") or params.get("cl_ord_id")
        known = _known_order(scope, str(ident), conn) if ident else None
        symbol = _symbol(params.get("pair")) or (known[0] if known else None)
        add(symbol, 1 + (age_penalty(table, known[1]) if known else 0))
    elif method in {"CancelOrder", "CancelOrderBatch"}:
        idents = _idents(params.get("txid") or params.get("cl_ord_id"))
        idents += _idents(params.get("orders")) + _idents(params.get("cl_ord_ids"))
        for ident in idents:
            known = _known_order(scope, ident, conn)
            if known:
                add(known[0], age_penalty(CANCEL_PENALTY, known[1]))
    # CancelAll / CancelAllOrdersAfter: +1 per affected pair / +1 without a pair on Kraken's
    # side; which pairs is unknown here, so they are not modelled.
    return [
        Charge(_trade_key(scope, s), amount, limits.trade_max - HEADROOM, limits.trade_decay)
        for s, amount in sorted(per_pair.items())
    ]


def remember_orders(
    *,
    api_key: str,
    pair: str,
    idents: list[str],
    account_ref: str | None = None,
    client: RedisClient | None = None,
) -> None:
    """Remember when this client placed (or amended) orders, for the age-based penalties."""
    symbol = _symbol(pair)
    if not symbol or not idents:
        return
    conn = client or redis_client()
    scope = account_scope(api_key=api_key, account_ref=account_ref)
    stamp = f"{symbol}|{time.time():.3f}"
    pipe = conn.pipeline(transaction=False)
    for ident in idents:
        pipe.set(_order_key(scope, ident), stamp, ex=ORDER_MEMORY_SECONDS)
    pipe.execute()


def remembered_pair(
    api_key: str,
    ident: str,
    *,
    account_ref: str | None = None,
    client: RedisClient | None = None,
) -> str | None:
    scope = account_scope(api_key=api_key, account_ref=account_ref)
    known = _known_order(scope, ident, client or redis_client())
    return known[0] if known else None


def theoretical_rate(tier: str, calls: int, cost: int = 1) -> float:
    """Kraken's best possible rate for ``calls`` REST calls of ``cost`` from an empty counter:
    the first ``max // cost`` go at once, the rest at the decay rate."""
    limits = tier_limits(tier)
    burst = math.floor(limits.rest_max / cost)
    if calls <= burst:
        return math.inf
    return calls / ((calls - burst) * cost / limits.rest_decay)
