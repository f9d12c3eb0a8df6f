"""Matching: placing orders, walking the book at price-time priority, fills, fees,
closing orders, conditional closes, triggers and the executions events."""

from __future__ import annotations

import bisect
from decimal import Decimal
from typing import Any

from apps.sandbox.errors import KrakenError
from apps.sandbox.market import PublicTrade
from apps.sandbox.pairs import ASSETS, PAIRS, Pair, fmt
from apps.sandbox.params import Params
from apps.sandbox.util import rfc3339, to_decimal

from .models import (
    FOK_UNFILLED,
    MPP_PCT,
    TRIGGERED_TYPES,
    ZERO,
    Account,
    Order,
    quantize_down,
    quantize_up,
)
from .order_entry import OrderEntryPart


class MatchingPart(OrderEntryPart):
    def _required_funds(self, acct: Account, order: Order) -> tuple[str, Decimal]:
        pair = PAIRS[order.pair]
        if order.side == "sell":
            return pair.base, order.volume
        fee_pct = self._fee_pct(acct, pair, maker=False)
        if order.viqc:
            return pair.quote, order.volume
        if order.ordertype == "market":
            px = self._sweep_price(pair, "buy", order.volume)
        else:
            px = (
                order.price2 if order.ordertype.endswith("-limit") and order.price2 else order.price
            ) or (self.ref_price(pair))
        cost = order.volume * px
        return pair.quote, quantize_up(cost + cost * fee_pct / 100, ASSETS[pair.quote].decimals)

    def _sweep_price(self, pair: Pair, side: str, volume: Decimal) -> Decimal:
        """Worst price a market order of ``volume`` would reach (for the funds check)."""
        market = self.markets[pair.id]
        levels = (
            sorted(market.asks.items())
            if side == "buy"
            else sorted(market.bids.items(), reverse=True)
        )
        left = volume
        px = market.best_ask() if side == "buy" else market.best_bid()
        for level_px, qty in levels:
            px = level_px
            left -= qty
            if left <= 0:
                break
        return px

    def place(self, acct: Account, order: Order) -> None:
        """Place a validated order: funds check, hold, events, matching."""
        tier = self.tier_of(acct)
        open_on_pair = sum(1 for txid in acct.open_ids if acct.orders[txid].pair == order.pair)
        if open_on_pair >= tier.max_open_per_pair:
            raise KrakenError("EOrder:Orders limit exceeded")
        asset, need = self._required_funds(acct, order)
        if acct.available(asset) < need:
            raise KrakenError("EOrder:Insufficient funds")
        order.txid = self.ids.kid("O")
        acct.orders[order.txid] = order
        acct.open_ids.append(order.txid)
        if order.ordertype != "market" or order.triggered or order.side == "sell":
            self._hold(acct, order, asset, need)
        self._exec_event(order, "pending_new", "pending_new")
        if order.starttm and order.starttm > self.now():
            self.pending_start.append(order)
            return
        self._activate(acct, order)

    def _activate(self, acct: Account, order: Order) -> None:
        pair = PAIRS[order.pair]
        order.status = "open"
        self._exec_event(order, "new", "new")
        if order.ordertype in TRIGGERED_TYPES and not order.triggered:
            self.untriggered[order.pair].append(order)
            self._check_trigger(order, self.ref_price(pair, order.trigger))
            return
        self._execute(acct, order)

    def _execute(self, acct: Account, order: Order) -> None:
        """Run a live (market/limit/triggered) order against the book."""
        pair = PAIRS[order.pair]
        limit = order.resting_limit()
        if "post" in order.oflags and limit is not None:
            opp = self._best_opposite(pair, order.side)
            if opp is not None and (
                (order.side == "buy" and limit >= opp) or (order.side == "sell" and limit <= opp)
            ):
                self._finish(acct, order, "canceled", "Post only order")
                return
        if order.ordertype == "market" or (order.triggered and limit is None):
            # Market price protection: unless ``nompp``, a market order does not walk the
            # book further than MPP_PCT from the touch; the rest is cancelled.
            protect: Decimal | None = None
            touch = self._best_opposite(pair, order.side)
            if "nompp" not in order.oflags and touch is not None:
                band = touch * MPP_PCT / 100
                protect = touch + band if order.side == "buy" else touch - band
            if order.timeinforce == "FOK" and not self._fills_entirely(order, protect):
                self._finish(acct, order, "canceled", FOK_UNFILLED)
                return
            self._take(acct, order, protect)
            if order.is_open:
                self._finish(
                    acct,
                    order,
                    "closed" if order.vol_exec else "canceled",
                    None if order.vol_exec else "Insufficient liquidity",
                )
            return
        if order.timeinforce == "FOK" and not self._fills_entirely(order, limit):
            self._finish(acct, order, "canceled", FOK_UNFILLED)
            return
        self._take(acct, order, limit)
        if not order.is_open:
            return
        if order.timeinforce == "FOK":
            # Unreachable unless the funds ran out mid-sweep: never leave a FOK resting.
            self._finish(acct, order, "canceled", FOK_UNFILLED)
            return
        if order.timeinforce == "IOC":
            self._finish(
                acct,
                order,
                "canceled" if not order.vol_exec else "closed",
                "Unfilled IOC order" if not order.vol_exec else None,
            )
            if order.vol_exec and order.status == "closed":
                order.status = "canceled"
                order.reason = "Partially filled IOC order"
            return
        self._rest(order)

    def _fills_entirely(self, order: Order, limit: Decimal | None) -> bool:
        """Fill-or-kill: would the whole order fill at once, at ``limit`` or better?

        Walks the opposite side (synthetic levels and other users' resting orders) the way
        ``_take`` would; the order's own resting orders count as nothing, and stop it dead
        when self-trade prevention would cancel the incoming order."""
        market = self.markets[order.pair]
        buying = order.side == "buy"
        levels: list[tuple[Decimal, Decimal, Order | None]] = [
            (price, qty, None) for price, qty in (market.asks if buying else market.bids).items()
        ]
        for user_order in self.book_orders[(order.pair, "sell" if buying else "buy")]:
            user_price = user_order.resting_limit()
            if user_price is not None:
                levels.append((user_price, user_order.remaining, user_order))
        levels.sort(key=lambda level: level[0] if buying else -level[0])
        needed = order.volume - (order.cost if order.viqc else order.vol_exec)
        for price, qty, resting in levels:
            if limit is not None and (price > limit if buying else price < limit):
                return False
            if resting is not None and resting.account_id == order.account_id:
                if order.stptype in ("cancel-newest", "cancel-both"):
                    return False
                continue
            needed -= price * qty if order.viqc else qty
            if needed <= 0:
                return True
        return False

    def _best_opposite(self, pair: Pair, side: str) -> Decimal | None:
        market = self.markets[pair.id]
        opp_side = "sell" if side == "buy" else "buy"
        user = self.book_orders[(pair.id, opp_side)]
        synth = (
            (min(market.asks) if market.asks else None)
            if side == "buy"
            else (max(market.bids) if market.bids else None)
        )
        resting_price = user[0].resting_limit() if user else None
        candidates = [price for price in (synth, resting_price) if price is not None]
        if not candidates:
            return None
        return min(candidates) if side == "buy" else max(candidates)

    @staticmethod
    def _book_key(order: Order) -> tuple[Decimal, int]:
        lim = order.resting_limit() or ZERO
        return (-lim if order.side == "buy" else lim, order.seq)

    def _rest(self, order: Order) -> None:
        lst = self.book_orders[(order.pair, order.side)]
        bisect.insort(lst, order, key=self._book_key)
        self._book_changed(order.pair)

    def _unrest(self, order: Order) -> None:
        lst = self.book_orders[(order.pair, order.side)]
        if order in lst:
            lst.remove(order)
            self._book_changed(order.pair)

    def _book_changed(self, pair: str) -> None:
        for listener in self.book_listeners:
            listener(pair)

    def _take(self, acct: Account, order: Order, limit: Decimal | None) -> None:
        """Match ``o`` as taker against synthetic liquidity and resting user orders."""
        pair = PAIRS[order.pair]
        market = self.markets[order.pair]
        synth = market.asks if order.side == "buy" else market.bids
        opp = self.book_orders[(order.pair, "sell" if order.side == "buy" else "buy")]
        quote_left = order.volume - order.cost if order.viqc else ZERO
        touched = False
        while order.is_open:
            left = order.remaining if not order.viqc else quote_left
            if left <= 0:
                break
            s_px = (min(synth) if order.side == "buy" else max(synth)) if synth else None
            resting = opp[0] if opp else None
            u_px = resting.resting_limit() if resting else None
            use_user = (
                resting is not None
                and u_px is not None
                and (s_px is None or (u_px < s_px if order.side == "buy" else u_px > s_px))
            )
            px = u_px if use_user else s_px
            if px is None:
                break
            if limit is not None and (px > limit if order.side == "buy" else px < limit):
                break
            if use_user and resting is not None:
                if resting.account_id == order.account_id:
                    # Self-trade prevention (stptype).
                    if order.stptype in ("cancel-oldest", "cancel-both"):
                        self.cancel_order(self.accounts[resting.account_id], resting, "Self trade")
                    if order.stptype in ("cancel-newest", "cancel-both"):
                        self._finish(acct, order, "canceled", "Self trade")
                        break
                    continue
                avail = resting.remaining
            else:
                avail = synth[px]
            if order.viqc:
                qty = quantize_down(min(avail * px, quote_left) / px, pair.lot_decimals)
                if qty <= 0:
                    break
            else:
                qty = min(avail, left)
            if order.side == "buy" and not self._can_afford(acct, order, px, qty):
                qty = self._affordable_qty(acct, order, px)
                if qty <= 0:
                    break
            touched = True
            if use_user and resting is not None:
                self._fill(self.accounts[resting.account_id], resting, px, qty, maker=True)
                if (not resting.is_open or resting.remaining <= 0) and resting in opp:
                    opp.remove(resting)
            else:
                synth[px] = avail - qty
                if synth[px] <= 0:
                    del synth[px]
            self._fill(acct, order, px, qty, maker=False)
            if order.viqc:
                quote_left -= px * qty
            market.record_trade(
                PublicTrade(
                    px,
                    qty,
                    self.now(),
                    "b" if order.side == "buy" else "s",
                    "m" if order.ordertype == "market" else "l",
                    self.ids.trade_seq(),
                )
            )
        if touched:
            market.top_up()
            market.updated = self.now()
            self._book_changed(order.pair)

    def _can_afford(self, acct: Account, order: Order, px: Decimal, qty: Decimal) -> bool:
        if order.hold_asset:
            return True  # funds were reserved up front
        pair = PAIRS[order.pair]
        fee_pct = self._fee_pct(acct, pair, maker=False)
        cost = px * qty
        return acct.available(pair.quote) >= cost + cost * fee_pct / 100

    def _affordable_qty(self, acct: Account, order: Order, px: Decimal) -> Decimal:
        pair = PAIRS[order.pair]
        fee_pct = self._fee_pct(acct, pair, maker=False)
        avail = acct.available(pair.quote)
        return quantize_down(avail / (px * (1 + fee_pct / 100)), pair.lot_decimals)

    def _fill(
        self,
        acct: Account,
        order: Order,
        px: Decimal,
        qty: Decimal,
        *,
        maker: bool,
    ) -> None:
        pair = PAIRS[order.pair]
        base, quote = ASSETS[pair.base], ASSETS[pair.quote]
        before = order.remaining
        cost = quantize_down(px * qty, quote.decimals + 2)
        pct = self._fee_pct(acct, pair, maker)
        fee_in_base = "fcib" in order.oflags
        tid = self.ids.kid("T")
        # Release the proportional part of the hold before moving money.
        if order.hold_asset:
            if order.viqc:
                self._release(acct, order, cost)
            else:
                self._release(acct, order, order.hold * qty / before if before > 0 else order.hold)
        if fee_in_base:
            fee = quantize_up(qty * pct / 100, base.decimals)
        else:
            fee = quantize_up(cost * pct / 100, quote.decimals)
        cost_rounded = quantize_down(cost, quote.decimals)
        if order.side == "buy":
            self._ledger(
                acct, quote.id, -cost_rounded, ZERO if fee_in_base else fee, "trade", "", tid
            )
            self._ledger(acct, base.id, qty, fee if fee_in_base else ZERO, "trade", "", tid)
        else:
            self._ledger(acct, base.id, -qty, fee if fee_in_base else ZERO, "trade", "", tid)
            self._ledger(
                acct, quote.id, cost_rounded, ZERO if fee_in_base else fee, "trade", "", tid
            )
        order.vol_exec += qty
        order.cost += cost_rounded
        order.fee += fee
        order.trades.append(tid)
        usd = (
            cost_rounded * quote.usd_hint
            if quote.id != "XXBT"
            else cost_rounded * self.markets["XXBTZUSD"].mid
        )
        acct.volume_usd += usd
        now = self.now()
        trade_int = self.ids.trade_seq()
        acct.trades[tid] = {
            "ordertxid": order.txid,
            "postxid": self.ids.kid("T"),
            "pair": pair.id,
            "time": now,
            "type": order.side,
            "ordertype": order.ordertype,
            "price": px,
            "cost": cost_rounded,
            "fee": fee,
            "vol": qty,
            "maker": maker,
            "trade_id": trade_int,
            "fee_asset": base.id if fee_in_base else quote.id,
        }
        full = order.remaining <= 0
        self._exec_event(
            order,
            "trade",
            "filled" if full else "partially_filled",
            extra={
                "exec_id": tid,
                "trade_id": trade_int,
                "last_qty": qty,
                "last_price": px,
                "liquidity_ind": "m" if maker else "t",
                "cost": cost_rounded,
                "fees": [{"asset": base.ws if fee_in_base else quote.ws, "qty": fee}],
                "fee_usd_equiv": quantize_down(
                    self.balance_usd(acct, base.id if fee_in_base else quote.id, fee), 4
                ),
            },
        )
        if full:
            self._finish(acct, order, "closed", None)

    def _finish(self, acct: Account, order: Order, status: str, reason: str | None) -> None:
        if not order.is_open:
            return
        order.status = status
        order.reason = reason
        order.closetm = self.now()
        self._release(acct, order)
        if order.txid in acct.open_ids:
            acct.open_ids.remove(order.txid)
        self._unrest(order)
        if order in self.untriggered[order.pair]:
            self.untriggered[order.pair].remove(order)
        if order in self.pending_start:
            self.pending_start.remove(order)
        exec_type = {"closed": "filled", "canceled": "canceled", "expired": "expired"}[status]
        extra: dict[str, Any] = {}
        if reason and status == "canceled":
            extra["cancel_reason"] = reason
        self._exec_event(order, exec_type, "filled" if status == "closed" else status, extra=extra)
        if status == "closed" and order.close and order.vol_exec > 0:
            self._spawn_close(acct, order)

    def _spawn_close(self, acct: Account, order: Order) -> None:
        """Conditional close: place the attached opposite order for the executed volume."""
        if order.close is None:
            return
        params: Params = {
            "type": "sell" if order.side == "buy" else "buy",
            "ordertype": order.close["ordertype"],
            "volume": fmt(order.vol_exec, PAIRS[order.pair].lot_decimals),
            "price": order.close.get("price"),
        }
        if "price2" in order.close:
            params["price2"] = order.close["price2"]
        try:
            child = self.build_order(acct, params, PAIRS[order.pair])
            child.parent_txid = order.txid
            child.userref = order.userref
            self.place(acct, child)
        except KrakenError:
            return  # Kraken silently drops an unplaceable close order too

    def cancel_order(self, acct: Account, order: Order, reason: str = "User requested") -> None:
        self._finish(acct, order, "canceled", reason)

    # ------------------------------------------------------------------ executions events
    def _exec_event(
        self,
        order: Order,
        exec_type: str,
        order_status: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not self.listeners or not self.exec_interest(order.account_id):
            return
        pair = PAIRS[order.pair]
        event: dict[str, Any] = {
            "order_id": order.txid,
            "symbol": pair.symbol,
            "exec_type": exec_type,
            "order_status": order_status,
            "side": order.side,
            "order_type": order.ordertype,
            "order_qty": order.volume,
            "cum_qty": order.vol_exec,
            "cum_cost": order.cost,
            "fee_ccy_pref": "fcib" if "fcib" in order.oflags else "fciq",
            "time_in_force": order.timeinforce,
            "timestamp": rfc3339(self.now()),
            "order_userref": order.userref or 0,
        }
        if order.cl_ord_id is not None:
            event["cl_ord_id"] = order.cl_ord_id
        lim = (
            order.price2
            if order.ordertype.endswith("-limit")
            else (order.price if order.ordertype in ("limit", "iceberg") else None)
        )
        if lim is not None:
            event["limit_price"] = lim
        if order.vol_exec:
            event["avg_price"] = quantize_down(order.cost / order.vol_exec, pair.pair_decimals)
        if extra:
            event.update(extra)
        self.emit(order.account_id, "execution", event)

    # ------------------------------------------------------------------ triggers & tick
    def _check_trigger(self, order: Order, ref: Decimal) -> None:
        if order.triggered or not order.is_open or order.price is None:
            return
        pair = PAIRS[order.pair]
        if order.trail_offset is not None:
            raw = order.trail_offset
            pct = raw.endswith("%")
            off = to_decimal(raw[1:-1] if pct else raw[1:]) or ZERO
            if order.side == "sell":
                order.trail_extreme = max(order.trail_extreme or ref, ref)
                offset = order.trail_extreme * off / 100 if pct else off
                order.price = quantize_down(order.trail_extreme - offset, pair.pair_decimals)
            else:
                order.trail_extreme = min(order.trail_extreme or ref, ref)
                offset = order.trail_extreme * off / 100 if pct else off
                order.price = quantize_down(order.trail_extreme + offset, pair.pair_decimals)
        stop = order.ordertype.startswith(("stop-loss", "trailing-stop"))
        hit = (
            (ref <= order.price if order.side == "sell" else ref >= order.price)
            if stop
            else (ref >= order.price if order.side == "sell" else ref <= order.price)
        )
        if not hit:
            return
        order.triggered = True
        order.misc.append("stopped" if stop else "touched")
        if order in self.untriggered[order.pair]:
            self.untriggered[order.pair].remove(order)
        acct = self.accounts[order.account_id]
        # Market-type triggered orders must not keep the pre-trigger hold estimate.
        if order.resting_limit() is None:
            self._release(acct, order)
            order.hold_asset = ""
            if order.side == "sell":
                self._hold(acct, order, pair.base, min(order.remaining, acct.available(pair.base)))
        self._execute(acct, order)
