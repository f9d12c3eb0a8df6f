"""Managing live orders: the per-pair trading counter, finding orders, cancel with its
penalty, AmendOrder and EditOrder's penalty."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import ASSETS, PAIRS, fmt
from apps.sandbox.params import Params, opt_bool, opt_dec, opt_int, opt_str
from apps.sandbox.ratelimit import AMEND_COST, CANCEL_COST, EDIT_COST, age_cost
from apps.sandbox.util import decimals_of

from .models import (
    TRIGGERED_TYPES,
    Account,
    Order,
    quantize_up,
)
from .simulation import SimulationPart


class AmendingPart(SimulationPart):
    def trading_charge(self, acct: Account, pair: str, amount: Decimal) -> None:
        if not self.rate_limits:
            return
        if not self.trade_limiter.add(acct.id, pair, amount, self.tier_of(acct), self.now()):
            raise KrakenError("EOrder:Rate limit exceeded")

    def find_orders(self, acct: Account, ident: str, *, open_only: bool = True) -> list[Order]:
        ids = acct.open_ids if open_only else list(acct.orders)
        if ident in acct.orders:
            order = acct.orders[ident]
            return [order] if (order.is_open or not open_only) else []
        ref = opt_int({"x": ident}, "x") if ident.lstrip("-").isdigit() else None
        if ref is not None:
            return [acct.orders[txid] for txid in ids if acct.orders[txid].userref == ref]
        return []

    def order_by_cl(self, acct: Account, cl: str) -> Order | None:
        for txid in acct.open_ids:
            if acct.orders[txid].cl_ord_id == cl:
                return acct.orders[txid]
        return None

    def cancel_with_penalty(self, acct: Account, order: Order) -> None:
        age = self.now() - max(order.opentm, order.amended_at)
        cost = age_cost(CANCEL_COST, age)
        if cost:
            self.trading_charge(acct, order.pair, Decimal(cost))
        self.cancel_order(acct, order)

    def amend(self, acct: Account, order: Order, params: Params) -> str:
        pair = PAIRS[order.pair]
        age = self.now() - max(order.opentm, order.amended_at)
        self.trading_charge(acct, order.pair, Decimal(1 + age_cost(AMEND_COST, age)))
        new_qty = opt_dec(params, "order_qty")
        new_limit_raw = opt_str(params, "limit_price")
        new_trigger_raw = opt_str(params, "trigger_price")
        display = opt_dec(params, "display_qty")
        post_only = opt_bool(params, "post_only")
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
            if new_qty <= order.vol_exec:
                raise KrakenError("EOrder:Invalid order:Order quantity below executed")
            if new_qty < pair.ordermin:
                raise KrakenError("EOrder:Order minimum not met")
        new_limit: Decimal | None = None
        if new_limit_raw is not None:
            new_limit, _ = self._parse_price(
                new_limit_raw, "limit_price", pair, order.side, self.ref_price(pair)
            )
            if new_limit is None or new_limit % pair.tick_size:
                raise KrakenError("EOrder:Tick size check failed")
            if order.ordertype not in ("limit", "iceberg") and not order.ordertype.endswith(
                "-limit"
            ):
                raise invalid("limit_price")
        new_trigger: Decimal | None = None
        if new_trigger_raw is not None:
            if order.ordertype not in TRIGGERED_TYPES or order.triggered:
                raise invalid("trigger_price")
            new_trigger, _ = self._parse_price(
                new_trigger_raw,
                "trigger_price",
                pair,
                order.side,
                self.ref_price(pair, order.trigger),
            )
        if post_only and new_limit is not None:
            opp = self._best_opposite(pair, order.side)
            if opp is not None and (
                (order.side == "buy" and new_limit >= opp)
                or (order.side == "sell" and new_limit <= opp)
            ):
                raise KrakenError("EOrder:Post only order")
        # Re-reserve funds for the amended order.
        acct_hold_before = order.hold
        self._release(acct, order)
        trial_qty = new_qty if new_qty is not None else order.volume
        limit_for_hold = (
            new_limit
            if new_limit is not None
            else (order.price2 if order.ordertype.endswith("-limit") else order.price)
        )
        if order.side == "sell":
            need = trial_qty - order.vol_exec
            asset = pair.base
        else:
            px = limit_for_hold or self.ref_price(pair)
            cost = (trial_qty - order.vol_exec) * px
            need = quantize_up(
                cost * (1 + self._fee_pct(acct, pair, False) / 100),
                ASSETS[pair.quote].decimals,
            )
            asset = pair.quote
        if acct.available(asset) < need:
            self._hold(acct, order, order.hold_asset or asset, acct_hold_before)
            raise KrakenError("EOrder:Insufficient funds")
        self._hold(acct, order, asset, need)
        was_resting = order in self.book_orders[(order.pair, order.side)]
        if was_resting:
            self._unrest(order)
        if new_qty is not None:
            order.volume = new_qty
        if display is not None:
            order.display_vol = display
        if new_trigger is not None:
            order.price = new_trigger
        if new_limit is not None:
            if order.ordertype.endswith("-limit"):
                order.price2 = new_limit
            else:
                order.price = new_limit
                # Price change loses queue priority.
                self._seq += 1
                order.seq = self._seq
        order.amended_at = self.now()
        if "amended" not in order.misc:
            order.misc.append("amended")
        amend_id = self.ids.kid("T")
        if not order.amends:
            order.amends.append(
                self._amend_entry(order, "original", self.ids.kid("T"), order.opentm)
            )
        order.amends.append(self._amend_entry(order, "user", amend_id, self.now()))
        self._exec_event(
            order,
            "amended",
            "partially_filled" if order.vol_exec else "new",
            extra={"reason": "User requested", "amended": True},
        )
        if was_resting:
            self._execute(acct, order)
        return amend_id

    def _amend_entry(self, order: Order, kind: str, amend_id: str, txid: float) -> dict[str, Any]:
        pair = PAIRS[order.pair]
        entry: dict[str, Any] = {
            "amend_id": amend_id,
            "amend_type": kind,
            "order_qty": fmt(order.volume, pair.lot_decimals),
            "remaining_qty": fmt(order.remaining, pair.lot_decimals),
            "timestamp": int(txid * 1e9),
        }
        if order.display_vol is not None:
            entry["display_qty"] = fmt(order.display_vol, pair.lot_decimals)
        lim = order.price2 if order.ordertype.endswith("-limit") else order.price
        if lim is not None:
            entry["limit_price"] = fmt(lim, pair.pair_decimals)
        if order.ordertype in TRIGGERED_TYPES and order.price is not None:
            entry["trigger_price"] = fmt(order.price, pair.pair_decimals)
        return entry

    def edit_penalty(self, acct: Account, order: Order) -> None:
        age = self.now() - max(order.opentm, order.amended_at)
        self.trading_charge(acct, order.pair, Decimal(1 + age_cost(EDIT_COST, age)))
