"""Seeded market model: one live order book per pair driven by a random walk.

The synthetic liquidity stands in for "everyone else" on the exchange. It moves a few
levels per tick (as a real book does) so WS book updates stay small, and simulated
participants send market orders that also hit sandbox users' resting orders (the engine
supplies those via ``user_levels``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from .pairs import ASSETS, Pair

ZERO = Decimal(0)
ONE = Decimal(1)
SECONDS_PER_YEAR = 365.0 * 86400.0
OHLC_INTERVALS: tuple[int, ...] = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
SYNTH_LEVELS = 120  # per side; deeper book subscriptions get what exists (README)
TOP_WINDOW = 40  # levels near the touch that are kept gap-free each tick


@dataclass(slots=True)
class PublicTrade:
    price: Decimal
    qty: Decimal
    time: float
    side: str  # "b" | "s" (taker side)
    ordtype: str  # "m" | "l"
    trade_id: int


@dataclass(slots=True)
class Candle:
    begin: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    notional: Decimal
    volume: Decimal
    count: int

    def add(self, price: Decimal, qty: Decimal) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.notional += price * qty
        self.volume += qty
        self.count += 1

    def vwap(self) -> Decimal:
        return self.notional / self.volume if self.volume else self.close


@dataclass
class Market:
    pair: Pair
    rng: random.Random
    mid: Decimal
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    trades: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=1000))
    spreads: deque[tuple[int, Decimal, Decimal]] = field(default_factory=lambda: deque(maxlen=1000))
    candles: dict[int, deque[Candle]] = field(default_factory=dict)
    last_price: Decimal = ZERO
    last_qty: Decimal = ZERO
    level_step: Decimal = ZERO
    # Last time the book/ticker changed, for WS update timestamps.
    updated: float = 0.0

    # ------------------------------------------------------------------ construction
    def init(self, now: float) -> None:
        p = self.pair
        self.level_step = max(
            p.tick_size, (self.mid * Decimal("0.00002")).quantize(p.price_q, rounding=ROUND_DOWN)
        )
        self.candles = {i: deque(maxlen=721) for i in OHLC_INTERVALS}
        self._backfill(now)
        self._rebuild_top()
        self.last_price = self.mid.quantize(p.price_q)
        self.updated = now
        self.record_spread(now)

    def _backfill(self, now: float) -> None:
        """Give OHLC/Trades/Ticker 12 hours of plausible history at start-up."""
        p = self.pair
        minutes = 720
        start = int(now // 60 * 60) - minutes * 60
        price = self.mid
        sigma = float(p.volatility) * math.sqrt(60.0 / SECONDS_PER_YEAR)
        # Walk backwards from the configured start price so "now" lands on it.
        path = [price]
        for _ in range(minutes):
            price = price / Decimal(repr(math.exp(self.rng.gauss(0.0, sigma))))
            path.append(price)
        path.reverse()
        tid_base = 10_000_000
        # Build 1-minute candles directly (three trades per minute) and roll them up into
        # the longer intervals; only the tail feeds the 1000-entry public trade tape.
        minute_candles: list[Candle] = []
        tape_from = minutes - (self.trades.maxlen or 1000) // 3
        usd_price = self.mid * ASSETS[p.quote].usd_hint
        for i in range(minutes):
            t0 = start + i * 60
            o, c = path[i].quantize(p.price_q), path[i + 1].quantize(p.price_q)
            mid_px = ((o + c) / 2).quantize(p.price_q)
            prices = (o, mid_px, c)
            candle: Candle | None = None
            for k, px in enumerate(prices):
                usd = Decimal(int(self.rng.lognormvariate(6.0, 1.0) * 100)) / 100
                qty = max(p.ordermin, (usd / usd_price).quantize(p.lot_q, rounding=ROUND_DOWN))
                tid_base += 1
                if i >= tape_from:
                    self.trades.append(
                        PublicTrade(
                            px, qty, t0 + 20.0 * k + 5.0, "b" if k % 2 else "s", "m", tid_base
                        )
                    )
                if candle is None:
                    candle = Candle(t0, px, px, px, px, px * qty, qty, 1)
                else:
                    candle.add(px, qty)
            assert candle is not None  # noqa: S101 - three prices per minute, always set
            minute_candles.append(candle)
        for interval, dq in self.candles.items():
            span = interval * 60
            for mc in minute_candles:
                begin = mc.begin // span * span
                if dq and dq[-1].begin == begin:
                    agg = dq[-1]
                    agg.high, agg.low = max(agg.high, mc.high), min(agg.low, mc.low)
                    agg.close = mc.close
                    agg.notional += mc.notional
                    agg.volume += mc.volume
                    agg.count += mc.count
                else:
                    dq.append(
                        Candle(
                            begin,
                            mc.open,
                            mc.high,
                            mc.low,
                            mc.close,
                            mc.notional,
                            mc.volume,
                            mc.count,
                        )
                    )
        last = self.trades[-1]
        self.last_price, self.last_qty = last.price, last.qty

    def _rand_qty(self, scale: Decimal = ONE) -> Decimal:
        usd = Decimal(repr(round(self.rng.lognormvariate(7.5, 1.1), 2))) * scale
        # Quote currencies other than USD: value the quote with its USD hint.
        price_usd = self.mid * ASSETS[self.pair.quote].usd_hint
        q = (usd / price_usd).quantize(self.pair.lot_q, rounding=ROUND_DOWN)
        return max(q, self.pair.ordermin)

    # ------------------------------------------------------------------ book maintenance
    def best_bid(self) -> Decimal:
        return max(self.bids) if self.bids else self.mid

    def best_ask(self) -> Decimal:
        return min(self.asks) if self.asks else self.mid

    def _rebuild_top(self) -> None:
        p = self.pair
        spread_ticks = max(1, int(self.mid * Decimal("0.00008") / p.tick_size))
        half = p.tick_size * spread_ticks / 2
        bb = ((self.mid - half) / p.tick_size).to_integral_value(ROUND_DOWN) * p.tick_size
        bb = bb.quantize(p.price_q)
        ba = (bb + p.tick_size * spread_ticks).quantize(p.price_q)
        for px in [x for x in self.bids if x > bb]:
            del self.bids[px]
        for px in [x for x in self.asks if x < ba]:
            del self.asks[px]
        if bb not in self.bids:
            self.bids[bb] = self._rand_qty()
        if ba not in self.asks:
            self.asks[ba] = self._rand_qty()
        self._fill_side(self.bids, bb, -1)
        self._fill_side(self.asks, ba, 1)

    def _fill_side(self, side: dict[Decimal, Decimal], best: Decimal, sign: int) -> None:
        """Close gaps near the top and keep the side at about SYNTH_LEVELS levels.

        Only the top TOP_WINDOW levels are scanned each tick (the deep book does not move),
        and trimming has some slack so the side is not re-sorted on every tick."""
        step = self.level_step
        q = self.pair.price_q
        top = (heapq.nsmallest if sign > 0 else heapq.nlargest)(TOP_WINDOW, side)
        prev = top[0]
        placed = 1
        for px in top[1:]:
            while abs(px - prev) > step * 4 and placed < TOP_WINDOW:
                prev = (prev + sign * step * self.rng.randint(1, 3)).quantize(q)
                if prev <= 0:
                    break
                side.setdefault(prev, self._rand_qty())
                placed += 1
            prev = px
            placed += 1
        if len(side) < SYNTH_LEVELS:
            self._extend(side, sign)
        elif len(side) > SYNTH_LEVELS + 20:
            for px in sorted(side, reverse=sign < 0)[SYNTH_LEVELS:]:
                del side[px]

    def _extend(self, side: dict[Decimal, Decimal], sign: int) -> None:
        """Add levels beyond the far end until the side has SYNTH_LEVELS again."""
        if not side:
            return
        count = len(side)
        last = max(side) if sign > 0 else min(side)
        while count < SYNTH_LEVELS:
            last = (last + sign * self.level_step * self.rng.randint(1, 3)).quantize(
                self.pair.price_q
            )
            if last <= 0:
                break
            if last not in side:
                side[last] = self._rand_qty()
                count += 1

    def top_up(self) -> None:
        """After trades or churn removed levels: refill the far ends, so the synthetic book
        never holds fewer than SYNTH_LEVELS a side (a depth-100 subscriber always sees 100)."""
        if len(self.bids) < SYNTH_LEVELS:
            self._extend(self.bids, -1)
        if len(self.asks) < SYNTH_LEVELS:
            self._extend(self.asks, 1)

    def step(self, dt: float) -> None:
        """Advance the random walk by ``dt`` simulated seconds and churn a few levels."""
        if dt <= 0:
            return
        sigma = float(self.pair.volatility) * math.sqrt(dt / SECONDS_PER_YEAR)
        z = self.rng.gauss(0.0, 1.0)
        self.mid = self.mid * Decimal(repr(math.exp(sigma * z)))
        self._rebuild_top()
        # Churn: a handful of quantity changes / deletions near the top.
        for side in (self.bids, self.asks):
            top = sorted(side, reverse=side is self.bids)[:30]
            for _ in range(self.rng.randint(0, 3)):
                px = top[self.rng.randrange(len(top))]
                if px not in side:
                    continue  # already churned away in this step
                if self.rng.random() < 0.15 and px != top[0]:
                    del side[px]
                else:
                    side[px] = self._rand_qty()
        self.top_up()

    def move_to(self, price: Decimal) -> None:
        self.mid = price
        self._rebuild_top()

    # ------------------------------------------------------------------ tape
    def _record_trade(self, t: PublicTrade) -> None:
        self.trades.append(t)
        self.last_price, self.last_qty = t.price, t.qty
        for interval, dq in self.candles.items():
            begin = int(t.time // (interval * 60) * interval * 60)
            if dq and dq[-1].begin == begin:
                dq[-1].add(t.price, t.qty)
            elif not dq or dq[-1].begin < begin:
                dq.append(
                    Candle(begin, t.price, t.price, t.price, t.price, t.price * t.qty, t.qty, 1)
                )

    def record_trade(self, t: PublicTrade) -> None:
        self._record_trade(t)

    def record_spread(self, now: float) -> None:
        bid, ask = self.best_bid(), self.best_ask()
        if not self.spreads or self.spreads[-1][1:] != (bid, ask):
            self.spreads.append((int(now), bid, ask))

    def stats(self, since: float) -> tuple[Decimal, Decimal, int, Decimal, Decimal, Decimal]:
        """(volume, vwap, count, low, high, open) over 1-minute candles from ``since``."""
        vol = Decimal(0)
        notional = Decimal(0)
        count = 0
        low: Decimal | None = None
        high: Decimal | None = None
        opn: Decimal | None = None
        for c in self.candles[1]:
            if c.begin + 60 <= since:
                continue
            if opn is None:
                opn = c.open
            vol += c.volume
            notional += c.notional
            count += c.count
            low = c.low if low is None else min(low, c.low)
            high = c.high if high is None else max(high, c.high)
        last = self.last_price
        return (vol, notional / vol if vol else last, count, low or last, high or last, opn or last)
