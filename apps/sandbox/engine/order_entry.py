"""Order entry: parsing and validating AddOrder parameters, order descriptions and the
REST order shape, and the system-status and deadline gates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import ASSETS, PAIRS, Pair, fmt, resolve_pair
from apps.sandbox.params import Params, opt_bool, opt_dec, opt_int, opt_str, req_str, str_list
from apps.sandbox.util import decimals_of, parse_rfc3339, to_decimal, ts_num

from .accounts import AccountsPart
from .models import (
    CL_ORD_ID_MAX,
    LIMIT_ONLY_TYPES,
    MATCHING_PAIR_STATUSES,
    OFLAGS,
    ORDER_TYPES,
    TIMES_IN_FORCE,
    TRIGGERED_TYPES,
    ZERO,
    Account,
    Order,
    quantize_down,
)


class OrderEntryPart(AccountsPart):
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
        text = raw.strip()
        prefix = text[0] if text[:1] in ("+", "-", "#") else ""
        pct = text.endswith("%")
        body = text[len(prefix) : len(text) - (1 if pct else 0)]
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
        absolute = quantize_down(absolute, pair.pair_decimals)
        if absolute <= 0:
            raise KrakenError("EOrder:Invalid price")
        return absolute, text

    def _parse_time(self, raw: str | None, name: str) -> float:
        if raw is None or raw == "" or raw == "0":
            return 0.0
        text = raw.strip()
        now = self.now()
        if text.startswith("+"):
            value = to_decimal(text[1:])
            if value is None or value < 0:
                raise invalid(name)
            return now + float(value)
        value = to_decimal(text)
        if value is None or value < 0:
            raise invalid(name)
        return float(value)

    def descr(self, order: Order) -> str:
        pair = PAIRS[order.pair]
        vol = fmt(order.volume, pair.lot_decimals)
        head = f"{order.side} {vol} {pair.altname} @ "
        return head + self._type_descr(
            order.ordertype, order.price, order.price2, pair, order.trail_offset
        )

    @staticmethod
    def _type_descr(
        ordertype: str,
        price: Decimal | None,
        price2: Decimal | None,
        pair: Pair,
        trail: str | None = None,
    ) -> str:
        def price_text(value: Decimal | None) -> str:
            return fmt(value, pair.pair_decimals) if value is not None else "0"

        match ordertype:
            case "market":
                return "market"
            case "limit" | "iceberg":
                return f"{ordertype} {price_text(price)}"
            case "stop-loss" | "take-profit":
                return f"{ordertype.replace('-', ' ')} {price_text(price)}"
            case "stop-loss-limit" | "take-profit-limit":
                base = ordertype.removesuffix("-limit").replace("-", " ")
                return f"{base} {price_text(price)} -> limit {price_text(price2)}"
            case "trailing-stop":
                return f"trailing stop {trail or price_text(price)}"
            case "trailing-stop-limit":
                return f"trailing stop {trail or price_text(price)} -> limit {price_text(price2)}"
            case _:
                return ordertype

    def close_descr(self, close: dict[str, str] | None, pair: Pair) -> str:
        if not close:
            return ""
        price = to_decimal(close.get("price", "")) if close.get("price") else None
        price2 = to_decimal(close.get("price2", "")) if close.get("price2") else None
        return "close position @ " + self._type_descr(close["ordertype"], price, price2, pair)

    # ------------------------------------------------------------------ order JSON
    def order_json(self, order: Order, *, with_trades: bool = False) -> dict[str, Any]:
        pair = PAIRS[order.pair]
        quote = ASSETS[pair.quote]
        avg = order.cost / order.vol_exec if order.vol_exec else ZERO
        out: dict[str, Any] = {
            "refid": order.parent_txid,
            "userref": order.userref if order.userref is not None else 0,
            "status": order.status,
            "opentm": ts_num(order.opentm),
            "starttm": ts_num(order.starttm) if order.starttm else 0,
            "expiretm": ts_num(order.expiretm) if order.expiretm else 0,
            "descr": {
                "pair": pair.altname,
                "type": order.side,
                "ordertype": order.ordertype,
                "price": fmt(order.price, pair.pair_decimals) if order.price is not None else "0",
                "price2": fmt(order.price2, pair.pair_decimals)
                if order.price2 is not None
                else "0",
                "leverage": "none",
                "order": self.descr(order),
                "close": self.close_descr(order.close, pair),
            },
            "vol": fmt(order.volume, pair.lot_decimals),
            "vol_exec": fmt(order.vol_exec, pair.lot_decimals),
            "cost": fmt(order.cost, pair.cost_decimals),
            "fee": fmt(order.fee, quote.decimals if order.hold_asset != pair.base else 8),
            "price": fmt(avg, pair.pair_decimals),
            "stopprice": fmt(
                order.price if order.ordertype in TRIGGERED_TYPES and order.price else ZERO,
                pair.pair_decimals,
            ),
            "limitprice": fmt(
                order.price2 if order.price2 is not None else ZERO, pair.pair_decimals
            ),
            "misc": ",".join(order.misc),
            "oflags": ",".join(order.oflags),
        }
        if order.cl_ord_id is not None:
            out["cl_ord_id"] = order.cl_ord_id
        if order.ordertype in TRIGGERED_TYPES:
            out["trigger"] = order.trigger
        if order.status in ("closed", "canceled", "expired"):
            out["closetm"] = ts_num(order.closetm)
            if order.reason is not None:
                out["reason"] = order.reason
        if with_trades and order.trades:
            out["trades"] = list(order.trades)
        return out

    # ------------------------------------------------------------------ status gates
    def check_can_place(self, pair: Pair, *, ordertype: str | None, post_only: bool) -> None:
        """The system mode, then the pair's mode, for a new order (Kraken's strings)."""
        post_only_limit = post_only and ordertype in ("limit", "iceberg")
        if self.status == "maintenance":
            raise KrakenError("EService:Unavailable")
        if self.status == "cancel_only":
            raise KrakenError("EService:Market in cancel_only mode")
        if self.status == "post_only" and not post_only_limit:
            raise KrakenError("EService:Market in post_only mode")
        mode = self.pair_status.get(pair.id, "online")
        if mode == "online":
            return
        if mode == "post_only" and post_only_limit:
            return
        if mode == "limit_only" and ordertype in LIMIT_ONLY_TYPES:
            return
        # reduce_only admits only position-reducing (margin) orders: never a spot order.
        raise KrakenError(f"EService:Market in {mode} mode")

    def check_can_amend(self, order: Order, *, post_only: bool) -> None:
        """Amending changes a live order: refused where new orders are, except that the
        pair's limit_only mode concerns order types, which an amend cannot change."""
        if self.status == "maintenance":
            raise KrakenError("EService:Unavailable")
        post = post_only or "post" in order.oflags
        pair = PAIRS[order.pair]
        if self.pair_status.get(pair.id) == "limit_only":
            self.check_can_place(pair, ordertype="limit", post_only=post)
            return
        self.check_can_place(pair, ordertype=order.ordertype, post_only=post)

    def check_can_cancel(self, pair: str | None = None) -> None:
        if self.status == "maintenance":
            raise KrakenError("EService:Unavailable")
        if pair is not None and self.pair_status.get(pair) == "maintenance":
            raise KrakenError("EService:Market in maintenance mode")

    def matching_on(self, pair: str) -> bool:
        """Whether resting orders on ``pair`` may trade now."""
        return self.status == "online" and self.pair_status.get(pair) in MATCHING_PAIR_STATUSES

    def check_deadline(self, params: Params) -> None:
        raw = opt_str(params, "deadline")
        if raw is None:
            return
        deadline = parse_rfc3339(raw)
        if deadline is None:
            raise invalid("deadline")
        now = self.now()
        if deadline < now:
            raise KrakenError("EService:Deadline elapsed")
        if deadline > now + 60:
            # The spec allows a deadline at most 60 s ahead.
            raise invalid("deadline")

    # ------------------------------------------------------------------ AddOrder
    def build_order(self, acct: Account, params: Params, pair: Pair) -> Order:
        """Validate AddOrder-style params into an (unplaced) Order. Raises KrakenError."""
        side = opt_str(params, "type")
        if side not in ("buy", "sell"):
            raise invalid("type")
        ordertype = opt_str(params, "ordertype")
        if ordertype not in ORDER_TYPES:
            raise invalid("ordertype")
        if ordertype == "settle-position":
            raise KrakenError("EOrder:Cannot open position")
        if opt_str(params, "leverage") not in (None, "", "none"):
            raise KrakenError("EOrder:Cannot open position")
        if opt_bool(params, "reduce_only"):
            raise KrakenError("EOrder:Cannot open position")
        volume = opt_dec(params, "volume")
        if volume is None or volume <= 0:
            raise invalid("volume")
        oflags = str_list(params, "oflags") or []
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
        trigger = opt_str(params, "trigger") or "last"
        if trigger not in ("last", "index"):
            raise invalid("trigger")
        stptype = opt_str(params, "stptype") or "cancel-newest"
        if stptype not in ("cancel-newest", "cancel-oldest", "cancel-both"):
            raise invalid("stptype")
        ref = self.ref_price(pair, trigger)
        price, _ = self._parse_price(opt_str(params, "price"), "price", pair, side, ref)
        price2, _ = self._parse_price(opt_str(params, "price2"), "price2", pair, side, price or ref)
        trail: str | None = None
        if ordertype == "market":
            if price is not None and opt_str(params, "price") not in (None, ""):
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
            raw = opt_str(params, "price") or ""
            if not raw.startswith("+"):
                raise invalid("price")
            trail = raw
            off = to_decimal(raw[1:-1] if raw.endswith("%") else raw[1:])
            if off is None or off < 0:
                raise invalid("price")
            offset_abs = ref * off / 100 if raw.endswith("%") else off
            price = quantize_down(
                ref - offset_abs if side == "sell" else ref + offset_abs, pair.pair_decimals
            )
            if ordertype == "trailing-stop-limit":
                raw2 = opt_str(params, "price2")
                if not raw2 or raw2[0] not in "+-":
                    raise invalid("price2")
                price2, _ = self._parse_price(raw2, "price2", pair, side, price)
        for px in (price, price2):
            if px is not None and (px % pair.tick_size) != 0:
                raise KrakenError("EOrder:Tick size check failed")
        tif = (opt_str(params, "timeinforce") or "GTC").upper()
        if tif not in TIMES_IN_FORCE:
            raise invalid("timeinforce")
        if tif == "FOK" and "post" in oflags:
            raise invalid("timeinforce")  # post-only can never fill at once
        starttm = self._parse_time(opt_str(params, "starttm"), "starttm")
        expiretm = self._parse_time(opt_str(params, "expiretm"), "expiretm")
        now = self.now()
        if tif == "GTD" and not expiretm:
            raise invalid("expiretm")
        if expiretm and expiretm < max(now, starttm) + 5:
            raise invalid("expiretm")
        if tif == "GTD" and expiretm > now + 31 * 86400:
            raise invalid("expiretm")  # GTD orders live at most one month
        userref = opt_int(params, "userref")
        if userref is not None and not (-(2**31) <= userref < 2**31):
            raise invalid("userref")
        cl = opt_str(params, "cl_ord_id")
        if cl is not None:
            if userref is not None:
                raise invalid("cl_ord_id")
            if not cl or len(cl) > CL_ORD_ID_MAX or not cl.isascii() or not cl.isprintable():
                raise invalid("cl_ord_id")
            if any(acct.orders[t].cl_ord_id == cl for t in acct.open_ids):
                raise KrakenError("EOrder:Duplicate cl_ord_id")
        display = opt_dec(params, "displayvol")
        if ordertype == "iceberg":
            if display is None or display <= 0 or display < volume / 15 or display > volume:
                raise invalid("displayvol")
        elif display is not None:
            raise invalid("displayvol")
        close = params.get("close")
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
            for field in ("price", "price2"):
                if close.get(field) not in (None, ""):
                    value = to_decimal(str(close[field]).lstrip("+-#").rstrip("%"))
                    if value is None:
                        raise invalid(f"close[{field}]")
                    close_d[field] = str(close[field])
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
        order = Order(
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
            order.trail_extreme = ref
        return order

    def resolve_pair_param(self, params: Params, name: str = "pair") -> Pair:
        raw = req_str(params, name)
        pair = resolve_pair(raw)
        if pair is None:
            raise KrakenError("EQuery:Unknown asset pair")
        return pair

    # ------------------------------------------------------------------ public book
