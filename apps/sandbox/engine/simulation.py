"""The market tick: outside order flow, crossing resting orders, timers (start/expiry,
dead man's switch), the aggregated public book and control-API price moves."""

from __future__ import annotations

from decimal import Decimal

from apps.sandbox.market import PublicTrade

from .matching import MatchingPart
from .models import (
    MAX_MARKET_STEP,
    ZERO,
    quantize_down,
)


class SimulationPart(MatchingPart):
    def tick(self) -> None:
        now = self.now()
        elapsed = now - self.last_tick
        if elapsed <= 0:
            return
        self.last_tick = now
        # A clock fast-forward (tests skipping a month) runs the timers for the whole jump
        # but moves markets by at most a minute's volatility, so shared sandboxes stay sane.
        market_dt = min(elapsed, MAX_MARKET_STEP)
        for pid, market in self.markets.items():
            market.step(market_dt)
            if self.matching_on(pid):
                self._cross_resting(pid)
                if self.rng.random() < min(1.0, self.flow_rate * market_dt):
                    self._outside_flow(pid)
                ref_last, ref_index = market.last_price, market.mid.quantize(market.pair.price_q)
                for order in list(self.untriggered[pid]):
                    self._check_trigger(order, ref_index if order.trigger == "index" else ref_last)
            market.record_spread(now)
            market.updated = now
        self._timers(now)

    def _cross_resting(self, pid: str) -> None:
        """After the market moved, fill resting user orders the synthetic book crossed."""
        market = self.markets[pid]
        for side, synth in (("buy", market.asks), ("sell", market.bids)):
            lst = self.book_orders[(pid, side)]
            while lst and synth:
                order = lst[0]
                lim = order.resting_limit()
                best = min(synth) if side == "buy" else max(synth)
                if lim is None or (lim < best if side == "buy" else lim > best):
                    break
                acct = self.accounts[order.account_id]
                qty = order.remaining
                lst.pop(0)
                self._fill(acct, order, lim, qty, maker=True)
                market.record_trade(
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
        market = self.markets[pid]
        pair = market.pair
        side = "buy" if self.rng.random() < 0.5 else "sell"
        want = market._rand_qty(Decimal("0.5"))
        synth = market.asks if side == "buy" else market.bids
        opp = self.book_orders[(pid, "sell" if side == "buy" else "buy")]
        now = self.now()
        while want > 0:
            s_px = (min(synth) if side == "buy" else max(synth)) if synth else None
            resting = opp[0] if opp else None
            u_px = resting.resting_limit() if resting else None
            if (
                resting is not None
                and u_px is not None
                and (s_px is None or (u_px <= s_px if side == "buy" else u_px >= s_px))
            ):
                qty = min(want, resting.remaining)
                self._fill(self.accounts[resting.account_id], resting, u_px, qty, maker=True)
                if not resting.is_open and resting in opp:
                    opp.remove(resting)
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
            market.record_trade(
                PublicTrade(
                    px,
                    quantize_down(qty, pair.lot_decimals),
                    now,
                    "b" if side == "buy" else "s",
                    "m",
                    self.ids.trade_seq(),
                )
            )
        market.top_up()
        self._book_changed(pid)

    def _timers(self, now: float) -> None:
        for order in list(self.pending_start):
            if order.starttm <= now:
                self.pending_start.remove(order)
                self._activate(self.accounts[order.account_id], order)
        for acct in self.accounts.values():
            if acct.cancel_after and acct.cancel_after <= now:
                acct.cancel_after = 0.0
                for txid in list(acct.open_ids):
                    self.cancel_order(acct, acct.orders[txid], "Dead man switch")
            for txid in list(acct.open_ids):
                order = acct.orders[txid]
                if order.expiretm and order.expiretm <= now:
                    self._finish(acct, order, "expired", "Order expired")

    # ------------------------------------------------------------------ trading API

    def book_levels(self, pid: str, side: str, depth: int) -> list[tuple[Decimal, Decimal]]:
        """Aggregated (price, qty) levels: synthetic liquidity + visible user orders."""
        market = self.markets[pid]
        synth = market.bids if side == "bid" else market.asks
        agg: dict[Decimal, Decimal] = {}
        for order in self.book_orders[(pid, "buy" if side == "bid" else "sell")]:
            lim = order.resting_limit()
            if lim is None:
                continue
            vis = min(order.remaining, order.display_vol) if order.display_vol else order.remaining
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
        market = self.markets[pid]
        market.move_to(price)
        now = self.now()
        if self.matching_on(pid):
            self._cross_resting(pid)
            market.record_trade(
                PublicTrade(
                    price.quantize(market.pair.price_q),
                    market.pair.ordermin,
                    now,
                    "b",
                    "m",
                    self.ids.trade_seq(),
                )
            )
            for order in list(self.untriggered[pid]):
                self._check_trigger(order, market.last_price if order.trigger == "last" else price)
        market.updated = now
        self._book_changed(pid)
