"""Static reference data: assets and asset pairs with Kraken's real names and precisions.

Values mirror Kraken's public ``Assets``/``AssetPairs`` answers (snapshot used for the
sandbox; see README "Deviations" for fields that drift on the live exchange).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Asset:
    id: str  # REST id, e.g. XXBT
    altname: str  # e.g. XBT
    ws: str  # WS v2 name, e.g. BTC
    decimals: int
    display_decimals: int
    collateral_value: Decimal = ONE
    # Mid price in USD used to value the asset (TradeBalance, fee volume).
    usd_hint: Decimal = ONE
    aclass: str = "currency"


ASSETS: dict[str, Asset] = {
    a.id: a
    for a in (
        Asset("XXBT", "XBT", "BTC", 10, 5, usd_hint=Decimal("65000")),
        Asset("XETH", "ETH", "ETH", 10, 5, usd_hint=Decimal("3200")),
        Asset("SOL", "SOL", "SOL", 10, 5, usd_hint=Decimal("150")),
        Asset("ZUSD", "USD", "USD", 4, 2),
        Asset("ZEUR", "EUR", "EUR", 4, 2, usd_hint=Decimal("1.08")),
        Asset("USDT", "USDT", "USDT", 8, 4),
        Asset("USDC", "USDC", "USDC", 8, 4),
        Asset("DOT", "DOT", "DOT", 10, 8, usd_hint=Decimal("6.5")),
        Asset("ADA", "ADA", "ADA", 8, 6, usd_hint=Decimal("0.45")),
        Asset("XXRP", "XRP", "XRP", 8, 5, usd_hint=Decimal("0.55")),
        Asset("XLTC", "LTC", "LTC", 10, 5, usd_hint=Decimal("80")),
    )
}

_ASSET_ALIASES: dict[str, str] = {}
for _a in ASSETS.values():
    for _name in (_a.id, _a.altname, _a.ws):
        _ASSET_ALIASES[_name.upper()] = _a.id


def resolve_asset(name: str) -> Asset | None:
    """Map any spelling (XXBT, XBT, BTC) to the canonical asset, or None."""
    aid = _ASSET_ALIASES.get(name.strip().upper())
    return ASSETS[aid] if aid else None


# Kraken's standard spot fee schedule (volume in USD, percent).
STD_TAKER: list[tuple[int, Decimal]] = [
    (0, Decimal("0.40")),
    (10000, Decimal("0.35")),
    (50000, Decimal("0.24")),
    (100000, Decimal("0.22")),
    (250000, Decimal("0.20")),
    (500000, Decimal("0.18")),
    (1000000, Decimal("0.16")),
    (2500000, Decimal("0.14")),
    (5000000, Decimal("0.12")),
    (10000000, Decimal("0.10")),
]
STD_MAKER: list[tuple[int, Decimal]] = [
    (0, Decimal("0.25")),
    (10000, Decimal("0.20")),
    (50000, Decimal("0.14")),
    (100000, Decimal("0.12")),
    (250000, Decimal("0.10")),
    (500000, Decimal("0.08")),
    (1000000, Decimal("0.06")),
    (2500000, Decimal("0.04")),
    (5000000, Decimal("0.02")),
    (10000000, Decimal("0.00")),
]
# Stablecoin / FX pairs have a flat, lower schedule: maker and taker pay the same.
STABLE_TAKER: list[tuple[int, Decimal]] = [
    (0, Decimal("0.20")),
    (50000, Decimal("0.16")),
    (100000, Decimal("0.12")),
    (250000, Decimal("0.08")),
    (500000, Decimal("0.04")),
    (1000000, Decimal("0.00")),
]
STABLE_MAKER = STABLE_TAKER


@dataclass(frozen=True, slots=True)
class Pair:
    id: str  # canonical REST key, e.g. XXBTZUSD
    altname: str  # XBTUSD
    wsname: str  # XBT/USD (legacy v1 name, as in AssetPairs)
    symbol: str  # BTC/USD (WS v2 symbol)
    base: str
    quote: str
    pair_decimals: int
    cost_decimals: int
    lot_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    start_price: Decimal
    # Annualised volatility used by the random-walk market model.
    volatility: Decimal
    stable: bool = False
    leverage: list[int] = field(default_factory=list)
    # Quantisation steps, precomputed: they sit on every formatting hot path.
    price_q: Decimal = field(init=False)
    lot_q: Decimal = field(init=False)
    cost_q: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_q", Decimal(1).scaleb(-self.pair_decimals))
        object.__setattr__(self, "lot_q", Decimal(1).scaleb(-self.lot_decimals))
        object.__setattr__(self, "cost_q", Decimal(1).scaleb(-self.cost_decimals))

    @property
    def taker_fees(self) -> list[tuple[int, Decimal]]:
        return STABLE_TAKER if self.stable else STD_TAKER

    @property
    def maker_fees(self) -> list[tuple[int, Decimal]]:
        return STABLE_MAKER if self.stable else STD_MAKER


def _p(
    pid: str,
    alt: str,
    ws: str,
    sym: str,
    base: str,
    quote: str,
    pd: int,
    cd: int,
    ordermin: str,
    costmin: str,
    tick: str,
    start: str,
    vol: str,
    *,
    stable: bool = False,
    lev: list[int] | None = None,
) -> Pair:
    return Pair(
        pid,
        alt,
        ws,
        sym,
        base,
        quote,
        pd,
        cd,
        8,
        Decimal(ordermin),
        Decimal(costmin),
        Decimal(tick),
        Decimal(start),
        Decimal(vol),
        stable,
        lev or [],
    )


PAIRS: dict[str, Pair] = {
    p.id: p
    for p in (
        _p(
            "XXBTZUSD",
            "XBTUSD",
            "XBT/USD",
            "BTC/USD",
            "XXBT",
            "ZUSD",
            1,
            5,
            "0.00005",
            "0.5",
            "0.1",
            "65000.0",
            "0.55",
            lev=[2, 3, 4, 5],
        ),
        _p(
            "XETHZUSD",
            "ETHUSD",
            "ETH/USD",
            "ETH/USD",
            "XETH",
            "ZUSD",
            2,
            5,
            "0.002",
            "0.5",
            "0.01",
            "3200.00",
            "0.70",
            lev=[2, 3, 4, 5],
        ),
        _p(
            "SOLUSD",
            "SOLUSD",
            "SOL/USD",
            "SOL/USD",
            "SOL",
            "ZUSD",
            2,
            5,
            "0.02",
            "0.5",
            "0.01",
            "150.00",
            "0.90",
            lev=[2, 3],
        ),
        _p(
            "XXBTZEUR",
            "XBTEUR",
            "XBT/EUR",
            "BTC/EUR",
            "XXBT",
            "ZEUR",
            1,
            5,
            "0.00005",
            "0.5",
            "0.1",
            "60000.0",
            "0.55",
            lev=[2, 3, 4, 5],
        ),
        _p(
            "XETHXXBT",
            "ETHXBT",
            "ETH/XBT",
            "ETH/BTC",
            "XETH",
            "XXBT",
            5,
            10,
            "0.002",
            "0.00002",
            "0.00001",
            "0.04900",
            "0.45",
            lev=[2, 3, 4, 5],
        ),
        _p(
            "USDTZUSD",
            "USDTUSD",
            "USDT/USD",
            "USDT/USD",
            "USDT",
            "ZUSD",
            5,
            5,
            "5",
            "0.5",
            "0.00001",
            "1.00010",
            "0.01",
            stable=True,
        ),
        _p(
            "USDCUSD",
            "USDCUSD",
            "USDC/USD",
            "USDC/USD",
            "USDC",
            "ZUSD",
            5,
            5,
            "5",
            "0.5",
            "0.00001",
            "0.99990",
            "0.01",
            stable=True,
        ),
        _p(
            "ZEURZUSD",
            "EURUSD",
            "EUR/USD",
            "EUR/USD",
            "ZEUR",
            "ZUSD",
            5,
            5,
            "5",
            "0.5",
            "0.00001",
            "1.08000",
            "0.07",
            stable=True,
        ),
        _p(
            "DOTUSD",
            "DOTUSD",
            "DOT/USD",
            "DOT/USD",
            "DOT",
            "ZUSD",
            4,
            5,
            "0.6",
            "0.5",
            "0.0001",
            "6.5000",
            "0.95",
            lev=[2, 3],
        ),
        _p(
            "ADAUSD",
            "ADAUSD",
            "ADA/USD",
            "ADA/USD",
            "ADA",
            "ZUSD",
            6,
            5,
            "10",
            "0.5",
            "0.000001",
            "0.450000",
            "0.95",
            lev=[2, 3],
        ),
        _p(
            "XXRPZUSD",
            "XRPUSD",
            "XRP/USD",
            "XRP/USD",
            "XXRP",
            "ZUSD",
            5,
            5,
            "10",
            "0.5",
            "0.00001",
            "0.55000",
            "0.90",
            lev=[2, 3, 4, 5],
        ),
        _p(
            "XLTCZUSD",
            "LTCUSD",
            "LTC/USD",
            "LTC/USD",
            "XLTC",
            "ZUSD",
            2,
            5,
            "0.05",
            "0.5",
            "0.01",
            "80.00",
            "0.80",
            lev=[2, 3],
        ),
    )
}

_PAIR_ALIASES: dict[str, str] = {}
for _p_ in PAIRS.values():
    b, q = ASSETS[_p_.base], ASSETS[_p_.quote]
    for _n in (
        _p_.id,
        _p_.altname,
        _p_.wsname,
        _p_.symbol,
        f"{b.ws}{q.ws}",
        f"{b.altname}/{q.altname}",
        f"{b.ws}/{q.altname}",
        f"{b.altname}/{q.ws}",
        f"{b.altname}{q.ws}",
        f"{b.ws}{q.altname}",
    ):
        _PAIR_ALIASES[_n.upper()] = _p_.id

PAIRS_BY_SYMBOL: dict[str, Pair] = {p.symbol: p for p in PAIRS.values()}


def resolve_pair(name: str) -> Pair | None:
    """Accept XXBTZUSD, XBTUSD, XBT/USD, BTC/USD, BTCUSD … and return the canonical pair."""
    pid = _PAIR_ALIASES.get(name.strip().upper())
    return PAIRS[pid] if pid else None


def fee_for(schedule: list[tuple[int, Decimal]], volume_usd: Decimal) -> Decimal:
    pct = schedule[0][1]
    for threshold, p in schedule:
        if volume_usd >= threshold:
            pct = p
    return pct


def next_fee(
    schedule: list[tuple[int, Decimal]],
    volume_usd: Decimal,
) -> tuple[Decimal | None, Decimal | None, Decimal]:
    """Return (next fee, next volume threshold, current tier volume)."""
    tier = Decimal(schedule[0][0])
    for i, (threshold, _p) in enumerate(schedule):
        if volume_usd >= threshold:
            tier = Decimal(threshold)
            if i + 1 < len(schedule):
                continue
        else:
            return schedule[i][1], Decimal(threshold), tier
    return None, None, tier


_QUANTS: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(19)}


def fmt(value: Decimal, places: int) -> str:
    """Format a Decimal with a fixed number of places (Kraken's wire style)."""
    return f"{value.quantize(_QUANTS.get(places) or Decimal(1).scaleb(-places)):f}"
