"""Accounts, balances, ledgers and the matching engine.

All money is Decimal. The engine is single-threaded (it runs inside the aiohttp event
loop), which gives the same serialisation guarantee Kraken's matching engine gives.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from .auth import ApiKey, Authenticator
from .clock import Clock
from .errors import KrakenError, invalid
from .market import Market, PublicTrade
from .pairs import ASSETS, PAIRS, Pair, fee_for, fmt, resolve_asset, resolve_pair
from .params import (
    Params,
    opt_bool,
    opt_dec,
    opt_int,
    opt_str,
    req_str,
    str_list,
)
from .ratelimit import (
    AMEND_COST,
    CANCEL_COST,
    EDIT_COST,
    TIERS,
    RestLimiter,
    Tier,
    TradingLimiter,
    age_cost,
)
from .util import IdGen, decimals_of, parse_rfc3339, rfc3339, to_decimal, ts_num

D = Decimal
ZERO = D(0)
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
MPP_PCT = Decimal(1)  # market price protection band (assumed; Kraken's is not public here)
MAX_MARKET_STEP = 60.0  # simulated seconds of market movement per tick, at most


_QUANTS: dict[int, Decimal] = {n: D(1).scaleb(-n) for n in range(19)}


def q(value: Decimal, places: int, rounding: str = ROUND_DOWN) -> Decimal:
    return value.quantize(_QUANTS.get(places) or D(1).scaleb(-places), rounding=rounding)


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
    earn: dict[str, Decimal] = field(default_factory=dict)  # strategy_id → allocated
    earn_rewards: dict[str, Decimal] = field(default_factory=dict)
    earn_pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    earn_accrued_at: float = 0.0
    ws_tokens: dict[str, float] = field(default_factory=dict)

    def available(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO) - self.holds.get(asset, ZERO)


Listener = Callable[[str, str, dict[str, Any]], None]


class Engine:
    def __init__(self, *, seed: int, tier: str, clock: Clock) -> None:
        self.seed = seed
        self.default_tier = tier
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self.ids = IdGen(seed)
        self.auth = Authenticator()
        self.rest_limiter = RestLimiter()
        self.trade_limiter = TradingLimiter()
        self.accounts: dict[str, Account] = {}
        self.status = "online"
        self.markets: dict[str, Market] = {}
        self.book_orders: dict[tuple[str, str], list[Order]] = {}
        self.untriggered: dict[str, list[Order]] = {p: [] for p in PAIRS}
        self.pending_start: list[Order] = []
        self.listeners: list[Listener] = []
        self.book_listeners: list[Callable[[str], None]] = []
        self._seq = 0
        self._acct_seq = 0
        self.last_tick = clock.now()
        # Probability per simulated second that an outside participant sends a market order.
        self.flow_rate = 0.6
        self.strict_validate_trap = False
        # Benchmarks switch Kraken's limiters off to measure raw throughput.
        self.rate_limits = True
        self.exec_interest: Callable[[str], bool] = lambda _account_id: True
        now = clock.now()
        for pid, pair in PAIRS.items():
            m = Market(pair=pair, rng=random.Random(f"{seed}:{pid}"), mid=pair.start_price)  # noqa: S311
            m.init(now)
            self.markets[pid] = m
            self.book_orders[(pid, "buy")] = []
            self.book_orders[(pid, "sell")] = []

    # ------------------------------------------------------------------ events
    def emit(self, account_id: str, kind: str, payload: dict[str, Any]) -> None:
        for fn in self.listeners:
            fn(account_id, kind, payload)

    def now(self) -> float:
        return self.clock.now()

    # ------------------------------------------------------------------ accounts / keys
    def create_account(
        self,
        balances: dict[str, str] | None = None,
        tier: str | None = None,
        parent: str | None = None,
        account_id: str | None = None,
    ) -> Account:
        self._acct_seq += 1
        aid = account_id or f"AA{self._acct_seq:02d}{self.ids.kid('N')[1:6]}"
        t = tier or self.default_tier
        if t not in TIERS:
            raise invalid("tier")
        acct = Account(id=aid, tier=t, parent=parent)
        self.accounts[aid] = acct
        for name, amount in (balances or {}).items():
            a = resolve_asset(name)
            value = to_decimal(amount)
            if a is None or value is None or value < 0:
                raise invalid(name)
            if value:
                self.credit(acct, a.id, value, "deposit", "", refid=self.ids.refid("Q"))
        return acct

    def tier_of(self, acct: Account) -> Tier:
        # Subaccounts share the master account's trading limits.
        master = self.accounts.get(acct.parent) if acct.parent else None
        return TIERS[(master or acct).tier]

    def create_key(
        self,
        account_id: str,
        permissions: list[str],
        nonce_window: int = 0,
        otp: str | None = None,
        key: str | None = None,
        secret: str | None = None,
    ) -> ApiKey:
        import base64
        import secrets

        if account_id not in self.accounts:
            raise KrakenError("EGeneral:Invalid arguments:account")
        k = ApiKey(
            key=key or base64.b64encode(secrets.token_bytes(42)).decode(),
            secret=secret or base64.b64encode(secrets.token_bytes(64)).decode(),
            account_id=account_id,
            permissions=set(permissions),
            nonce_window=int(nonce_window),
            otp=otp,
        )
        self.auth.keys[k.key] = k
        return k

    # ------------------------------------------------------------------ ledger
    def _ledger(
        self,
        acct: Account,
        asset: str,
        amount: Decimal,
        fee: Decimal,
        ltype: str,
        subtype: str,
        refid: str,
    ) -> dict[str, Any]:
        a = ASSETS.get(asset)
        places = a.decimals if a else 10
        bal = acct.balances.get(asset, ZERO) + amount - fee
        acct.balances[asset] = q(bal, places)
        lid = self.ids.kid("L")
        now = self.now()
        entry = {
            "refid": refid,
            "time": now,
            "type": ltype,
            "subtype": subtype,
            "aclass": "currency",
            "asset": asset,
            "amount": amount,
            "fee": fee,
            "balance": acct.balances[asset],
            "wallet": "spot / main",
        }
        acct.ledgers[lid] = entry
        self.emit(acct.id, "ledger", {"id": lid, **entry})
        return entry

    def credit(
        self,
        acct: Account,
        asset: str,
        amount: Decimal,
        ltype: str,
        subtype: str,
        refid: str,
        fee: Decimal = ZERO,
    ) -> dict[str, Any]:
        return self._ledger(acct, asset, amount, fee, ltype, subtype, refid)

    def ledger_json(self, lid: str, e: dict[str, Any]) -> dict[str, Any]:
        a = ASSETS.get(e["asset"])
        places = a.decimals if a else 10
        return {
            "refid": e["refid"],
            "time": ts_num(e["time"]),
            "type": e["type"],
            "subtype": e["subtype"],
            "aclass": e["aclass"],
            "asset": e["asset"],
            "amount": fmt(e["amount"], places),
            "fee": fmt(e["fee"], places),
            "balance": fmt(e["balance"], places),
        }

    def _hold(self, acct: Account, order: Order, asset: str, amount: Decimal) -> None:
        order.hold_asset = asset
        order.hold = amount
        acct.holds[asset] = acct.holds.get(asset, ZERO) + amount

    def _release(self, acct: Account, order: Order, amount: Decimal | None = None) -> None:
        if not order.hold_asset:
            return
        amt = order.hold if amount is None else min(amount, order.hold)
        order.hold -= amt
        acct.holds[order.hold_asset] = max(ZERO, acct.holds.get(order.hold_asset, ZERO) - amt)

    # ------------------------------------------------------------------ helpers
    def _fee_pct(self, acct: Account, pair: Pair, maker: bool) -> Decimal:
        return fee_for(pair.maker_fees if maker else pair.taker_fees, acct.volume_usd)

    def ref_price(self, pair: Pair, trigger: str = "last") -> Decimal:
        m = self.markets[pair.id]
        if trigger == "index":
            return m.mid.quantize(pair.price_q)
        return m.last_price

    def _parse_price(
        self,
        raw: str | None,
        name: str,
        pair: Pair,
        side: str,
        ref: Decimal,
        *,
        allow_relative: bool = True,
    ) -> tuple[Decimal | None, str | None]:
        """Parse an absolute or relative (``+``/``-``/``#`` prefix, ``%`` suffix) price.

        Returns (absolute price, relative spec) — the spec is kept for trailing stops."""
        if raw is None or raw == "":
            return None, None
        s = raw.strip()
        prefix = s[0] if s[:1] in ("+", "-", "#") else ""
        pct = s.endswith("%")
        body = s[len(prefix) : len(s) - (1 if pct else 0)]
        value = to_decimal(body)
        if value is None or value < 0 or (not prefix and not pct and value == 0):
            raise invalid(name)
        if not prefix and not pct:
            if decimals_of(value) > pair.pair_decimals:
                raise KrakenError(
                    f"EOrder:Invalid price:{pair.id} price can only be specified up to "
                    f"{pair.pair_decimals} decimals."
                )
            return value, None
        if not allow_relative:
            raise invalid(name)
        offset = ref * value / 100 if pct else value
        if prefix == "+":
            absolute = ref + offset
        elif prefix == "-":
            absolute = ref - offset
        elif prefix == "#":
            absolute = ref + offset if side == "buy" else ref - offset
        else:  # bare percentage: percent of the reference price
            absolute = offset
        absolute = q(absolute, pair.pair_decimals, ROUND_DOWN)
        if absolute <= 0:
            raise KrakenError("EOrder:Invalid price")
        return absolute, s

    def _parse_time(self, raw: str | None, name: str) -> float:
        if raw is None or raw == "" or raw == "0":
            return 0.0
        s = raw.strip()
        now = self.now()
        if s.startswith("+"):
            v = to_decimal(s[1:])
            if v is None or v < 0:
                raise invalid(name)
            return now + float(v)
        v = to_decimal(s)
        if v is None or v < 0:
            raise invalid(name)
        return float(v)

    def descr(self, o: Order) -> str:
        pair = PAIRS[o.pair]
        vol = fmt(o.volume, pair.lot_decimals)
        head = f"{o.side} {vol} {pair.altname} @ "
        return head + self._type_descr(o.ordertype, o.price, o.price2, pair, o.trail_offset)

    @staticmethod
    def _type_descr(
        ordertype: str,
        price: Decimal | None,
        price2: Decimal | None,
        pair: Pair,
        trail: str | None = None,
    ) -> str:
        def p(x: Decimal | None) -> str:
            return fmt(x, pair.pair_decimals) if x is not None else "0"

        match ordertype:
            case "market":
                return "market"
            case "limit" | "iceberg":
                return f"{ordertype} {p(price)}"
            case "stop-loss" | "take-profit":
                return f"{ordertype.replace('-', ' ')} {p(price)}"
            case "stop-loss-limit" | "take-profit-limit":
                base = ordertype.removesuffix("-limit").replace("-", " ")
                return f"{base} {p(price)} -> limit {p(price2)}"
            case "trailing-stop":
                return f"trailing stop {trail or p(price)}"
            case "trailing-stop-limit":
                return f"trailing stop {trail or p(price)} -> limit {p(price2)}"
            case _:
                return ordertype

    def close_descr(self, close: dict[str, str] | None, pair: Pair) -> str:
        if not close:
            return ""
        price = to_decimal(close.get("price", "")) if close.get("price") else None
        price2 = to_decimal(close.get("price2", "")) if close.get("price2") else None
        return "close position @ " + self._type_descr(close["ordertype"], price, price2, pair)

    # ------------------------------------------------------------------ order JSON
    def order_json(self, o: Order, *, with_trades: bool = False) -> dict[str, Any]:
        pair = PAIRS[o.pair]
        quote = ASSETS[pair.quote]
        avg = o.cost / o.vol_exec if o.vol_exec else ZERO
        d: dict[str, Any] = {
            "refid": o.parent_txid,
            "userref": o.userref if o.userref is not None else 0,
            "status": o.status,
            "opentm": ts_num(o.opentm),
            "starttm": ts_num(o.starttm) if o.starttm else 0,
            "expiretm": ts_num(o.expiretm) if o.expiretm else 0,
            "descr": {
                "pair": pair.altname,
                "type": o.side,
                "ordertype": o.ordertype,
                "price": fmt(o.price, pair.pair_decimals) if o.price is not None else "0",
                "price2": fmt(o.price2, pair.pair_decimals) if o.price2 is not None else "0",
                "leverage": "none",
                "order": self.descr(o),
                "close": self.close_descr(o.close, pair),
            },
            "vol": fmt(o.volume, pair.lot_decimals),
            "vol_exec": fmt(o.vol_exec, pair.lot_decimals),
            "cost": fmt(o.cost, pair.cost_decimals),
            "fee": fmt(o.fee, quote.decimals if o.hold_asset != pair.base else 8),
            "price": fmt(avg, pair.pair_decimals),
            "stopprice": fmt(
                o.price if o.ordertype in TRIGGERED_TYPES and o.price else ZERO, pair.pair_decimals
            ),
            "limitprice": fmt(o.price2 if o.price2 is not None else ZERO, pair.pair_decimals),
            "misc": ",".join(o.misc),
            "oflags": ",".join(o.oflags),
        }
        if o.cl_ord_id is not None:
            d["cl_ord_id"] = o.cl_ord_id
        if o.ordertype in TRIGGERED_TYPES:
            d["trigger"] = o.trigger
        if o.status in ("closed", "canceled", "expired"):
            d["closetm"] = ts_num(o.closetm)
            if o.reason is not None:
                d["reason"] = o.reason
        if with_trades and o.trades:
            d["trades"] = list(o.trades)
        return d

    # ------------------------------------------------------------------ status gates
    def check_can_place(self, post_only_limit: bool) -> None:
        if self.status == "maintenance":
            raise KrakenError("EService:Unavailable")
        if self.status == "cancel_only":
            raise KrakenError("EService:Market in cancel_only mode")
        if self.status == "post_only" and not post_only_limit:
            raise KrakenError("EService:Market in post_only mode")

    def check_can_cancel(self) -> None:
        if self.status == "maintenance":
            raise KrakenError("EService:Unavailable")

    def check_deadline(self, p: Params) -> None:
        raw = opt_str(p, "deadline")
        if raw is None:
            return
        t = parse_rfc3339(raw)
        if t is None:
            raise invalid("deadline")
        now = self.now()
        if t < now:
            raise KrakenError("EService:Deadline elapsed")
        if t > now + 60:
            # The spec allows a deadline at most 60 s ahead.
            raise invalid("deadline")

    # ------------------------------------------------------------------ AddOrder
    def build_order(self, acct: Account, p: Params, pair: Pair) -> Order:
        """Validate AddOrder-style params into an (unplaced) Order. Raises KrakenError."""
        side = opt_str(p, "type")
        if side not in ("buy", "sell"):
            raise invalid("type")
        ordertype = opt_str(p, "ordertype")
        if ordertype not in ORDER_TYPES:
            raise invalid("ordertype")
        if ordertype == "settle-position":
            raise KrakenError("EOrder:Cannot open position")
        if opt_str(p, "leverage") not in (None, "", "none"):
            raise KrakenError("EOrder:Cannot open position")
        if opt_bool(p, "reduce_only"):
            raise KrakenError("EOrder:Cannot open position")
        volume = opt_dec(p, "volume")
        if volume is None or volume <= 0:
            raise invalid("volume")
        oflags = str_list(p, "oflags") or []
        if any(f not in OFLAGS for f in oflags) or len(set(oflags)) != len(oflags):
            raise invalid("oflags")
        if "fcib" in oflags and "fciq" in oflags:
            raise invalid("oflags")
        viqc = "viqc" in oflags
        if viqc and not (ordertype == "market" and side == "buy"):
            raise invalid("oflags")
        if "post" in oflags and ordertype not in ("limit", "iceberg"):
            raise invalid("oflags")
        vol_places = ASSETS[pair.quote].decimals if viqc else pair.lot_decimals
        if decimals_of(volume) > vol_places:
            raise invalid("volume")
        trigger = opt_str(p, "trigger") or "last"
        if trigger not in ("last", "index"):
            raise invalid("trigger")
        stptype = opt_str(p, "stptype") or "cancel-newest"
        if stptype not in ("cancel-newest", "cancel-oldest", "cancel-both"):
            raise invalid("stptype")
        ref = self.ref_price(pair, trigger)
        price, _ = self._parse_price(opt_str(p, "price"), "price", pair, side, ref)
        price2, _ = self._parse_price(opt_str(p, "price2"), "price2", pair, side, price or ref)
        trail: str | None = None
        if ordertype == "market":
            if price is not None and opt_str(p, "price") not in (None, ""):
                # Kraken ignores price for market orders; keep it out of the book.
                price = None
        elif ordertype in ("limit", "iceberg", "stop-loss", "take-profit"):
            if price is None:
                raise invalid("price")
        elif ordertype in ("stop-loss-limit", "take-profit-limit"):
            if price is None:
                raise invalid("price")
            if price2 is None:
                raise invalid("price2")
        elif ordertype in ("trailing-stop", "trailing-stop-limit"):
            raw = opt_str(p, "price") or ""
            if not raw.startswith("+"):
                raise invalid("price")
            trail = raw
            off = to_decimal(raw[1:-1] if raw.endswith("%") else raw[1:])
            if off is None or off < 0:
                raise invalid("price")
            offset_abs = ref * off / 100 if raw.endswith("%") else off
            price = q(ref - offset_abs if side == "sell" else ref + offset_abs, pair.pair_decimals)
            if ordertype == "trailing-stop-limit":
                raw2 = opt_str(p, "price2")
                if not raw2 or raw2[0] not in "+-":
                    raise invalid("price2")
                price2, _ = self._parse_price(raw2, "price2", pair, side, price)
        for px in (price, price2):
            if px is not None and (px % pair.tick_size) != 0:
                raise KrakenError("EOrder:Tick size check failed")
        tif = (opt_str(p, "timeinforce") or "GTC").upper()
        if tif not in ("GTC", "IOC", "GTD"):
            raise invalid("timeinforce")
        starttm = self._parse_time(opt_str(p, "starttm"), "starttm")
        expiretm = self._parse_time(opt_str(p, "expiretm"), "expiretm")
        now = self.now()
        if tif == "GTD" and not expiretm:
            raise invalid("expiretm")
        if expiretm and expiretm < max(now, starttm) + 5:
            raise invalid("expiretm")
        if tif == "GTD" and expiretm > now + 31 * 86400:
            raise invalid("expiretm")  # GTD orders live at most one month
        userref = opt_int(p, "userref")
        if userref is not None and not (-(2**31) <= userref < 2**31):
            raise invalid("userref")
        cl = opt_str(p, "cl_ord_id")
        if cl is not None:
            if userref is not None:
                raise invalid("cl_ord_id")
            if not cl or len(cl) > CL_ORD_ID_MAX or not cl.isascii() or not cl.isprintable():
                raise invalid("cl_ord_id")
            if any(acct.orders[t].cl_ord_id == cl for t in acct.open_ids):
                raise KrakenError("EOrder:Duplicate cl_ord_id")
        display = opt_dec(p, "displayvol")
        if ordertype == "iceberg":
            if display is None or display <= 0 or display < volume / 15 or display > volume:
                raise invalid("displayvol")
        elif display is not None:
            raise invalid("displayvol")
        close = p.get("close")
        close_d: dict[str, str] | None = None
        if close is not None:
            if not isinstance(close, dict) or not close.get("ordertype"):
                raise invalid("close[ordertype]")
            if cl is not None:
                raise invalid("close")
            ctype = str(close["ordertype"])
            if ctype not in ORDER_TYPES - {"market", "settle-position", "iceberg"}:
                raise invalid("close[ordertype]")
            close_d = {"ordertype": ctype}
            for k in ("price", "price2"):
                if close.get(k) not in (None, ""):
                    v = to_decimal(str(close[k]).lstrip("+-#").rstrip("%"))
                    if v is None:
                        raise invalid(f"close[{k}]")
                    close_d[k] = str(close[k])
            if "price" not in close_d:
                raise invalid("close[price]")
        # Minimums (ordermin in base; costmin in quote for priced orders).
        if not viqc and volume < pair.ordermin:
            raise KrakenError("EOrder:Order minimum not met")
        est_price = price2 if ordertype.endswith("-limit") and price2 else price or ref
        cost_est = volume if viqc else volume * est_price
        if cost_est < pair.costmin:
            raise KrakenError("EOrder:Cost minimum not met")
        self._seq += 1
        o = Order(
            txid="",
            account_id=acct.id,
            pair=pair.id,
            side=side,
            ordertype=ordertype,
            volume=volume,
            price=price,
            price2=price2,
            opentm=now,
            seq=self._seq,
            oflags=oflags,
            timeinforce=tif,
            starttm=starttm,
            expiretm=expiretm,
            userref=userref,
            cl_ord_id=cl,
            display_vol=display,
            close=close_d,
            trigger=trigger,
            stptype=stptype,
            trail_offset=trail,
            viqc=viqc,
        )
        if trail is not None:
            o.trail_extreme = ref
        return o

    def _required_funds(self, acct: Account, o: Order) -> tuple[str, Decimal]:
        pair = PAIRS[o.pair]
        if o.side == "sell":
            return pair.base, o.volume
        fee_pct = self._fee_pct(acct, pair, maker=False)
        if o.viqc:
            return pair.quote, o.volume
        if o.ordertype == "market":
            px = self._sweep_price(pair, "buy", o.volume)
        else:
            px = (o.price2 if o.ordertype.endswith("-limit") and o.price2 else o.price) or (
                self.ref_price(pair)
            )
        cost = o.volume * px
        return pair.quote, q(cost + cost * fee_pct / 100, ASSETS[pair.quote].decimals, ROUND_UP)

    def _sweep_price(self, pair: Pair, side: str, volume: Decimal) -> Decimal:
        """Worst price a market order of ``volume`` would reach (for the funds check)."""
        m = self.markets[pair.id]
        levels = sorted(m.asks.items()) if side == "buy" else sorted(m.bids.items(), reverse=True)
        left = volume
        px = m.best_ask() if side == "buy" else m.best_bid()
        for level_px, qty in levels:
            px = level_px
            left -= qty
            if left <= 0:
                break
        return px

    def place(self, acct: Account, o: Order) -> None:
        """Place a validated order: funds check, hold, events, matching."""
        tier = self.tier_of(acct)
        open_on_pair = sum(1 for t in acct.open_ids if acct.orders[t].pair == o.pair)
        if open_on_pair >= tier.max_open_per_pair:
            raise KrakenError("EOrder:Orders limit exceeded")
        asset, need = self._required_funds(acct, o)
        if acct.available(asset) < need:
            raise KrakenError("EOrder:Insufficient funds")
        o.txid = self.ids.kid("O")
        acct.orders[o.txid] = o
        acct.open_ids.append(o.txid)
        if o.ordertype != "market" or o.triggered or o.side == "sell":
            self._hold(acct, o, asset, need)
        self._exec_event(o, "pending_new", "pending_new")
        if o.starttm and o.starttm > self.now():
            self.pending_start.append(o)
            return
        self._activate(acct, o)

    def _activate(self, acct: Account, o: Order) -> None:
        pair = PAIRS[o.pair]
        o.status = "open"
        self._exec_event(o, "new", "new")
        if o.ordertype in TRIGGERED_TYPES and not o.triggered:
            self.untriggered[o.pair].append(o)
            self._check_trigger(o, self.ref_price(pair, o.trigger))
            return
        self._execute(acct, o)

    def _execute(self, acct: Account, o: Order) -> None:
        """Run a live (market/limit/triggered) order against the book."""
        pair = PAIRS[o.pair]
        limit = o.resting_limit()
        if "post" in o.oflags and limit is not None:
            opp = self._best_opposite(pair, o.side)
            if opp is not None and (
                (o.side == "buy" and limit >= opp) or (o.side == "sell" and limit <= opp)
            ):
                self._finish(acct, o, "canceled", "Post only order")
                return
        if o.ordertype == "market" or (o.triggered and limit is None):
            # Market price protection: unless ``nompp``, a market order does not walk the
            # book further than MPP_PCT from the touch; the rest is cancelled.
            protect: Decimal | None = None
            touch = self._best_opposite(pair, o.side)
            if "nompp" not in o.oflags and touch is not None:
                band = touch * MPP_PCT / 100
                protect = touch + band if o.side == "buy" else touch - band
            self._take(acct, o, protect)
            if o.is_open:
                self._finish(
                    acct,
                    o,
                    "closed" if o.vol_exec else "canceled",
                    None if o.vol_exec else "Insufficient liquidity",
                )
            return
        self._take(acct, o, limit)
        if not o.is_open:
            return
        if o.timeinforce == "IOC":
            self._finish(
                acct,
                o,
                "canceled" if not o.vol_exec else "closed",
                "Unfilled IOC order" if not o.vol_exec else None,
            )
            if o.vol_exec and o.status == "closed":
                o.status = "canceled"
                o.reason = "Partially filled IOC order"
            return
        self._rest(o)

    def _best_opposite(self, pair: Pair, side: str) -> Decimal | None:
        m = self.markets[pair.id]
        opp_side = "sell" if side == "buy" else "buy"
        user = self.book_orders[(pair.id, opp_side)]
        synth = (
            (min(m.asks) if m.asks else None)
            if side == "buy"
            else (max(m.bids) if m.bids else None)
        )
        up = user[0].resting_limit() if user else None
        cands = [x for x in (synth, up) if x is not None]
        if not cands:
            return None
        return min(cands) if side == "buy" else max(cands)

    @staticmethod
    def _book_key(o: Order) -> tuple[Decimal, int]:
        lim = o.resting_limit() or ZERO
        return (-lim if o.side == "buy" else lim, o.seq)

    def _rest(self, o: Order) -> None:
        lst = self.book_orders[(o.pair, o.side)]
        bisect.insort(lst, o, key=self._book_key)
        self._book_changed(o.pair)

    def _unrest(self, o: Order) -> None:
        lst = self.book_orders[(o.pair, o.side)]
        if o in lst:
            lst.remove(o)
            self._book_changed(o.pair)

    def _book_changed(self, pair: str) -> None:
        for fn in self.book_listeners:
            fn(pair)

    def _take(self, acct: Account, o: Order, limit: Decimal | None) -> None:
        """Match ``o`` as taker against synthetic liquidity and resting user orders."""
        pair = PAIRS[o.pair]
        m = self.markets[o.pair]
        synth = m.asks if o.side == "buy" else m.bids
        opp = self.book_orders[(o.pair, "sell" if o.side == "buy" else "buy")]
        quote_left = o.volume - o.cost if o.viqc else ZERO
        touched = False
        while o.is_open:
            left = o.remaining if not o.viqc else quote_left
            if left <= 0:
                break
            s_px = (min(synth) if o.side == "buy" else max(synth)) if synth else None
            u = opp[0] if opp else None
            u_px = u.resting_limit() if u else None
            use_user = (
                u is not None
                and u_px is not None
                and (s_px is None or (u_px < s_px if o.side == "buy" else u_px > s_px))
            )
            px = u_px if use_user else s_px
            if px is None:
                break
            if limit is not None and (px > limit if o.side == "buy" else px < limit):
                break
            if use_user and u is not None:
                if u.account_id == o.account_id:
                    # Self-trade prevention (stptype).
                    if o.stptype in ("cancel-oldest", "cancel-both"):
                        self.cancel_order(self.accounts[u.account_id], u, "Self trade")
                    if o.stptype in ("cancel-newest", "cancel-both"):
                        self._finish(acct, o, "canceled", "Self trade")
                        break
                    continue
                avail = u.remaining
            else:
                avail = synth[px]
            if o.viqc:
                qty = q(min(avail * px, quote_left) / px, pair.lot_decimals)
                if qty <= 0:
                    break
            else:
                qty = min(avail, left)
            if o.side == "buy" and not self._can_afford(acct, o, px, qty):
                qty = self._affordable_qty(acct, o, px)
                if qty <= 0:
                    break
            touched = True
            if use_user and u is not None:
                self._fill(self.accounts[u.account_id], u, px, qty, maker=True)
                if (not u.is_open or u.remaining <= 0) and u in opp:
                    opp.remove(u)
            else:
                synth[px] = avail - qty
                if synth[px] <= 0:
                    del synth[px]
            self._fill(acct, o, px, qty, maker=False)
            if o.viqc:
                quote_left -= px * qty
            m.record_trade(
                PublicTrade(
                    px,
                    qty,
                    self.now(),
                    "b" if o.side == "buy" else "s",
                    "m" if o.ordertype == "market" else "l",
                    self.ids.trade_seq(),
                )
            )
        if touched:
            m.updated = self.now()
            self._book_changed(o.pair)

    def _can_afford(self, acct: Account, o: Order, px: Decimal, qty: Decimal) -> bool:
        if o.hold_asset:
            return True  # funds were reserved up front
        pair = PAIRS[o.pair]
        fee_pct = self._fee_pct(acct, pair, maker=False)
        cost = px * qty
        return acct.available(pair.quote) >= cost + cost * fee_pct / 100

    def _affordable_qty(self, acct: Account, o: Order, px: Decimal) -> Decimal:
        pair = PAIRS[o.pair]
        fee_pct = self._fee_pct(acct, pair, maker=False)
        avail = acct.available(pair.quote)
        return q(avail / (px * (1 + fee_pct / 100)), pair.lot_decimals)

    def _fill(
        self,
        acct: Account,
        o: Order,
        px: Decimal,
        qty: Decimal,
        *,
        maker: bool,
    ) -> None:
        pair = PAIRS[o.pair]
        base, quote = ASSETS[pair.base], ASSETS[pair.quote]
        before = o.remaining
        cost = q(px * qty, quote.decimals + 2)
        pct = self._fee_pct(acct, pair, maker)
        fee_in_base = "fcib" in o.oflags
        tid = self.ids.kid("T")
        # Release the proportional part of the hold before moving money.
        if o.hold_asset:
            if o.viqc:
                self._release(acct, o, cost)
            else:
                self._release(acct, o, o.hold * qty / before if before > 0 else o.hold)
        if fee_in_base:
            fee = q(qty * pct / 100, base.decimals, ROUND_UP)
        else:
            fee = q(cost * pct / 100, quote.decimals, ROUND_UP)
        cost_q = q(cost, quote.decimals)
        if o.side == "buy":
            self._ledger(acct, quote.id, -cost_q, ZERO if fee_in_base else fee, "trade", "", tid)
            self._ledger(acct, base.id, qty, fee if fee_in_base else ZERO, "trade", "", tid)
        else:
            self._ledger(acct, base.id, -qty, fee if fee_in_base else ZERO, "trade", "", tid)
            self._ledger(acct, quote.id, cost_q, ZERO if fee_in_base else fee, "trade", "", tid)
        o.vol_exec += qty
        o.cost += cost_q
        o.fee += fee
        o.trades.append(tid)
        usd = (
            cost_q * quote.usd_hint if quote.id != "XXBT" else cost_q * self.markets["XXBTZUSD"].mid
        )
        acct.volume_usd += usd
        now = self.now()
        trade_int = self.ids.trade_seq()
        acct.trades[tid] = {
            "ordertxid": o.txid,
            "postxid": self.ids.kid("T"),
            "pair": pair.id,
            "time": now,
            "type": o.side,
            "ordertype": o.ordertype,
            "price": px,
            "cost": cost_q,
            "fee": fee,
            "vol": qty,
            "maker": maker,
            "trade_id": trade_int,
            "fee_asset": base.id if fee_in_base else quote.id,
        }
        full = o.remaining <= 0
        self._exec_event(
            o,
            "trade",
            "filled" if full else "partially_filled",
            extra={
                "exec_id": tid,
                "trade_id": trade_int,
                "last_qty": qty,
                "last_price": px,
                "liquidity_ind": "m" if maker else "t",
                "cost": cost_q,
                "fees": [{"asset": base.ws if fee_in_base else quote.ws, "qty": fee}],
                "fee_usd_equiv": q(
                    self.balance_usd(acct, base.id if fee_in_base else quote.id, fee), 4
                ),
            },
        )
        if full:
            self._finish(acct, o, "closed", None)

    def _finish(self, acct: Account, o: Order, status: str, reason: str | None) -> None:
        if not o.is_open:
            return
        o.status = status
        o.reason = reason
        o.closetm = self.now()
        self._release(acct, o)
        if o.txid in acct.open_ids:
            acct.open_ids.remove(o.txid)
        self._unrest(o)
        if o in self.untriggered[o.pair]:
            self.untriggered[o.pair].remove(o)
        if o in self.pending_start:
            self.pending_start.remove(o)
        exec_type = {"closed": "filled", "canceled": "canceled", "expired": "expired"}[status]
        extra: dict[str, Any] = {}
        if reason and status == "canceled":
            extra["cancel_reason"] = reason
        self._exec_event(o, exec_type, "filled" if status == "closed" else status, extra=extra)
        if status == "closed" and o.close and o.vol_exec > 0:
            self._spawn_close(acct, o)

    def _spawn_close(self, acct: Account, o: Order) -> None:
        """Conditional close: place the attached opposite order for the executed volume."""
        if o.close is None:
            return
        params: Params = {
            "type": "sell" if o.side == "buy" else "buy",
            "ordertype": o.close["ordertype"],
            "volume": fmt(o.vol_exec, PAIRS[o.pair].lot_decimals),
            "price": o.close.get("price"),
        }
        if "price2" in o.close:
            params["price2"] = o.close["price2"]
        try:
            child = self.build_order(acct, params, PAIRS[o.pair])
            child.parent_txid = o.txid
            child.userref = o.userref
            self.place(acct, child)
        except KrakenError:
            return  # Kraken silently drops an unplaceable close order too

    def cancel_order(self, acct: Account, o: Order, reason: str = "User requested") -> None:
        self._finish(acct, o, "canceled", reason)

    # ------------------------------------------------------------------ executions events
    def _exec_event(
        self,
        o: Order,
        exec_type: str,
        order_status: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not self.listeners or not self.exec_interest(o.account_id):
            return
        pair = PAIRS[o.pair]
        ev: dict[str, Any] = {
            "order_id": o.txid,
            "symbol": pair.symbol,
            "exec_type": exec_type,
            "order_status": order_status,
            "side": o.side,
            "order_type": o.ordertype,
            "order_qty": o.volume,
            "cum_qty": o.vol_exec,
            "cum_cost": o.cost,
            "fee_ccy_pref": "fcib" if "fcib" in o.oflags else "fciq",
            "time_in_force": o.timeinforce,
            "timestamp": rfc3339(self.now()),
            "order_userref": o.userref or 0,
        }
        if o.cl_ord_id is not None:
            ev["cl_ord_id"] = o.cl_ord_id
        lim = (
            o.price2
            if o.ordertype.endswith("-limit")
            else (o.price if o.ordertype in ("limit", "iceberg") else None)
        )
        if lim is not None:
            ev["limit_price"] = lim
        if o.vol_exec:
            ev["avg_price"] = q(o.cost / o.vol_exec, pair.pair_decimals)
        if extra:
            ev.update(extra)
        self.emit(o.account_id, "execution", ev)

    # ------------------------------------------------------------------ triggers & tick
    def _check_trigger(self, o: Order, ref: Decimal) -> None:
        if o.triggered or not o.is_open or o.price is None:
            return
        pair = PAIRS[o.pair]
        if o.trail_offset is not None:
            raw = o.trail_offset
            pct = raw.endswith("%")
            off = to_decimal(raw[1:-1] if pct else raw[1:]) or ZERO
            if o.side == "sell":
                o.trail_extreme = max(o.trail_extreme or ref, ref)
                offset = o.trail_extreme * off / 100 if pct else off
                o.price = q(o.trail_extreme - offset, pair.pair_decimals)
            else:
                o.trail_extreme = min(o.trail_extreme or ref, ref)
                offset = o.trail_extreme * off / 100 if pct else off
                o.price = q(o.trail_extreme + offset, pair.pair_decimals)
        stop = o.ordertype.startswith(("stop-loss", "trailing-stop"))
        hit = (
            (ref <= o.price if o.side == "sell" else ref >= o.price)
            if stop
            else (ref >= o.price if o.side == "sell" else ref <= o.price)
        )
        if not hit:
            return
        o.triggered = True
        o.misc.append("stopped" if stop else "touched")
        if o in self.untriggered[o.pair]:
            self.untriggered[o.pair].remove(o)
        acct = self.accounts[o.account_id]
        # Market-type triggered orders must not keep the pre-trigger hold estimate.
        if o.resting_limit() is None:
            self._release(acct, o)
            o.hold_asset = ""
            if o.side == "sell":
                self._hold(acct, o, pair.base, min(o.remaining, acct.available(pair.base)))
        self._execute(acct, o)

    def tick(self) -> None:
        now = self.now()
        dt = now - self.last_tick
        if dt <= 0:
            return
        self.last_tick = now
        trading = self.status == "online"
        # A clock fast-forward (tests skipping a month) runs the timers for the whole jump
        # but moves markets by at most a minute's volatility, so shared sandboxes stay sane.
        market_dt = min(dt, MAX_MARKET_STEP)
        for pid, m in self.markets.items():
            m.step(market_dt)
            if trading:
                self._cross_resting(pid)
                if self.rng.random() < min(1.0, self.flow_rate * market_dt):
                    self._outside_flow(pid)
                ref_last, ref_index = m.last_price, m.mid.quantize(m.pair.price_q)
                for o in list(self.untriggered[pid]):
                    self._check_trigger(o, ref_index if o.trigger == "index" else ref_last)
            m.record_spread(now)
            m.updated = now
        self._timers(now)

    def _cross_resting(self, pid: str) -> None:
        """After the market moved, fill resting user orders the synthetic book crossed."""
        m = self.markets[pid]
        for side, synth in (("buy", m.asks), ("sell", m.bids)):
            lst = self.book_orders[(pid, side)]
            while lst and synth:
                o = lst[0]
                lim = o.resting_limit()
                best = min(synth) if side == "buy" else max(synth)
                if lim is None or (lim < best if side == "buy" else lim > best):
                    break
                acct = self.accounts[o.account_id]
                qty = o.remaining
                lst.pop(0)
                self._fill(acct, o, lim, qty, maker=True)
                m.record_trade(
                    PublicTrade(
                        lim,
                        qty,
                        self.now(),
                        "s" if side == "buy" else "b",
                        "m",
                        self.ids.trade_seq(),
                    )
                )
                self._book_changed(pid)

    def _outside_flow(self, pid: str) -> None:
        """A simulated participant's market order sweeping the top of the book."""
        m = self.markets[pid]
        pair = m.pair
        side = "buy" if self.rng.random() < 0.5 else "sell"
        want = m._rand_qty(D("0.5"))
        synth = m.asks if side == "buy" else m.bids
        opp = self.book_orders[(pid, "sell" if side == "buy" else "buy")]
        now = self.now()
        while want > 0:
            s_px = (min(synth) if side == "buy" else max(synth)) if synth else None
            u = opp[0] if opp else None
            u_px = u.resting_limit() if u else None
            if (
                u is not None
                and u_px is not None
                and (s_px is None or (u_px <= s_px if side == "buy" else u_px >= s_px))
            ):
                qty = min(want, u.remaining)
                self._fill(self.accounts[u.account_id], u, u_px, qty, maker=True)
                if not u.is_open and u in opp:
                    opp.remove(u)
                px = u_px
            elif s_px is not None:
                qty = min(want, synth[s_px])
                synth[s_px] -= qty
                if synth[s_px] <= 0:
                    del synth[s_px]
                px = s_px
            else:
                break
            want -= qty
            m.record_trade(
                PublicTrade(
                    px,
                    q(qty, pair.lot_decimals),
                    now,
                    "b" if side == "buy" else "s",
                    "m",
                    self.ids.trade_seq(),
                )
            )
        self._book_changed(pid)

    def _timers(self, now: float) -> None:
        for o in list(self.pending_start):
            if o.starttm <= now:
                self.pending_start.remove(o)
                self._activate(self.accounts[o.account_id], o)
        for acct in self.accounts.values():
            if acct.cancel_after and acct.cancel_after <= now:
                acct.cancel_after = 0.0
                for t in list(acct.open_ids):
                    self.cancel_order(acct, acct.orders[t], "Dead man switch")
            for t in list(acct.open_ids):
                o = acct.orders[t]
                if o.expiretm and o.expiretm <= now:
                    self._finish(acct, o, "expired", "Order expired")

    # ------------------------------------------------------------------ trading API
    def trading_charge(self, acct: Account, pair: str, amount: Decimal) -> None:
        if not self.rate_limits:
            return
        if not self.trade_limiter.add(acct.id, pair, amount, self.tier_of(acct), self.now()):
            raise KrakenError("EOrder:Rate limit exceeded")

    def find_orders(self, acct: Account, ident: str, *, open_only: bool = True) -> list[Order]:
        ids = acct.open_ids if open_only else list(acct.orders)
        if ident in acct.orders:
            o = acct.orders[ident]
            return [o] if (o.is_open or not open_only) else []
        ref = opt_int({"x": ident}, "x") if ident.lstrip("-").isdigit() else None
        if ref is not None:
            return [acct.orders[t] for t in ids if acct.orders[t].userref == ref]
        return []

    def order_by_cl(self, acct: Account, cl: str) -> Order | None:
        for t in acct.open_ids:
            if acct.orders[t].cl_ord_id == cl:
                return acct.orders[t]
        return None

    def cancel_with_penalty(self, acct: Account, o: Order) -> None:
        age = self.now() - max(o.opentm, o.amended_at)
        cost = age_cost(CANCEL_COST, age)
        if cost:
            self.trading_charge(acct, o.pair, D(cost))
        self.cancel_order(acct, o)

    def amend(self, acct: Account, o: Order, p: Params) -> str:
        pair = PAIRS[o.pair]
        age = self.now() - max(o.opentm, o.amended_at)
        self.trading_charge(acct, o.pair, D(1 + age_cost(AMEND_COST, age)))
        new_qty = opt_dec(p, "order_qty")
        new_limit_raw = opt_str(p, "limit_price")
        new_trigger_raw = opt_str(p, "trigger_price")
        display = opt_dec(p, "display_qty")
        post_only = opt_bool(p, "post_only")
        if (
            new_qty is None
            and new_limit_raw is None
            and new_trigger_raw is None
            and (display is None)
        ):
            raise invalid()
        if new_qty is not None:
            if new_qty <= 0 or decimals_of(new_qty) > pair.lot_decimals:
                raise invalid("order_qty")
            if new_qty <= o.vol_exec:
                raise KrakenError("EOrder:Invalid order:Order quantity below executed")
            if new_qty < pair.ordermin:
                raise KrakenError("EOrder:Order minimum not met")
        new_limit: Decimal | None = None
        if new_limit_raw is not None:
            new_limit, _ = self._parse_price(
                new_limit_raw, "limit_price", pair, o.side, self.ref_price(pair)
            )
            if new_limit is None or new_limit % pair.tick_size:
                raise KrakenError("EOrder:Tick size check failed")
            if o.ordertype not in ("limit", "iceberg") and not o.ordertype.endswith("-limit"):
                raise invalid("limit_price")
        new_trigger: Decimal | None = None
        if new_trigger_raw is not None:
            if o.ordertype not in TRIGGERED_TYPES or o.triggered:
                raise invalid("trigger_price")
            new_trigger, _ = self._parse_price(
                new_trigger_raw, "trigger_price", pair, o.side, self.ref_price(pair, o.trigger)
            )
        if post_only and new_limit is not None:
            opp = self._best_opposite(pair, o.side)
            if opp is not None and (
                (o.side == "buy" and new_limit >= opp) or (o.side == "sell" and new_limit <= opp)
            ):
                raise KrakenError("EOrder:Post only order")
        # Re-reserve funds for the amended order.
        acct_hold_before = o.hold
        self._release(acct, o)
        trial_qty = new_qty if new_qty is not None else o.volume
        limit_for_hold = (
            new_limit
            if new_limit is not None
            else (o.price2 if o.ordertype.endswith("-limit") else o.price)
        )
        if o.side == "sell":
            need = trial_qty - o.vol_exec
            asset = pair.base
        else:
            px = limit_for_hold or self.ref_price(pair)
            cost = (trial_qty - o.vol_exec) * px
            need = q(
                cost * (1 + self._fee_pct(acct, pair, False) / 100),
                ASSETS[pair.quote].decimals,
                ROUND_UP,
            )
            asset = pair.quote
        if acct.available(asset) < need:
            self._hold(acct, o, o.hold_asset or asset, acct_hold_before)
            raise KrakenError("EOrder:Insufficient funds")
        self._hold(acct, o, asset, need)
        was_resting = o in self.book_orders[(o.pair, o.side)]
        if was_resting:
            self._unrest(o)
        if new_qty is not None:
            o.volume = new_qty
        if display is not None:
            o.display_vol = display
        if new_trigger is not None:
            o.price = new_trigger
        if new_limit is not None:
            if o.ordertype.endswith("-limit"):
                o.price2 = new_limit
            else:
                o.price = new_limit
                # Price change loses queue priority.
                self._seq += 1
                o.seq = self._seq
        o.amended_at = self.now()
        if "amended" not in o.misc:
            o.misc.append("amended")
        amend_id = self.ids.kid("T")
        if not o.amends:
            o.amends.append(self._amend_entry(o, "original", self.ids.kid("T"), o.opentm))
        o.amends.append(self._amend_entry(o, "user", amend_id, self.now()))
        self._exec_event(
            o,
            "amended",
            "partially_filled" if o.vol_exec else "new",
            extra={"reason": "User requested", "amended": True},
        )
        if was_resting:
            self._execute(acct, o)
        return amend_id

    def _amend_entry(self, o: Order, kind: str, amend_id: str, t: float) -> dict[str, Any]:
        pair = PAIRS[o.pair]
        e: dict[str, Any] = {
            "amend_id": amend_id,
            "amend_type": kind,
            "order_qty": fmt(o.volume, pair.lot_decimals),
            "remaining_qty": fmt(o.remaining, pair.lot_decimals),
            "timestamp": int(t * 1e9),
        }
        if o.display_vol is not None:
            e["display_qty"] = fmt(o.display_vol, pair.lot_decimals)
        lim = o.price2 if o.ordertype.endswith("-limit") else o.price
        if lim is not None:
            e["limit_price"] = fmt(lim, pair.pair_decimals)
        if o.ordertype in TRIGGERED_TYPES and o.price is not None:
            e["trigger_price"] = fmt(o.price, pair.pair_decimals)
        return e

    def edit_penalty(self, acct: Account, o: Order) -> None:
        age = self.now() - max(o.opentm, o.amended_at)
        self.trading_charge(acct, o.pair, D(1 + age_cost(EDIT_COST, age)))

    def resolve_pair_param(self, p: Params, name: str = "pair") -> Pair:
        raw = req_str(p, name)
        pair = resolve_pair(raw)
        if pair is None:
            raise KrakenError("EQuery:Unknown asset pair")
        return pair

    # ------------------------------------------------------------------ public book
    def book_levels(self, pid: str, side: str, depth: int) -> list[tuple[Decimal, Decimal]]:
        """Aggregated (price, qty) levels: synthetic liquidity + visible user orders."""
        m = self.markets[pid]
        synth = m.bids if side == "bid" else m.asks
        agg: dict[Decimal, Decimal] = {}
        for o in self.book_orders[(pid, "buy" if side == "bid" else "sell")]:
            lim = o.resting_limit()
            if lim is None:
                continue
            vis = min(o.remaining, o.display_vol) if o.display_vol else o.remaining
            agg[lim] = agg.get(lim, ZERO) + vis
        if agg:
            merged = dict(synth)
            for px, qty in agg.items():
                merged[px] = merged.get(px, ZERO) + qty
            items = merged.items()
        else:
            items = synth.items()
        if side == "bid":
            return sorted(items, key=lambda x: -x[0])[:depth]
        return sorted(items)[:depth]

    def set_price(self, pid: str, price: Decimal) -> None:
        m = self.markets[pid]
        m.move_to(price)
        now = self.now()
        if self.status == "online":
            self._cross_resting(pid)
            m.record_trade(
                PublicTrade(
                    price.quantize(m.pair.price_q),
                    m.pair.ordermin,
                    now,
                    "b",
                    "m",
                    self.ids.trade_seq(),
                )
            )
            for o in list(self.untriggered[pid]):
                self._check_trigger(o, m.last_price if o.trigger == "last" else price)
        m.updated = now
        self._book_changed(pid)

    def balance_usd(self, acct: Account, asset: str, amount: Decimal) -> Decimal:
        if asset == "ZUSD":
            return amount
        for pair in PAIRS.values():
            if pair.base == asset and pair.quote == "ZUSD":
                return amount * self.markets[pair.id].mid
        a = ASSETS.get(asset)
        return amount * (a.usd_hint if a else ZERO)
