"""Public channels: subscribe/unsubscribe and the ticker, trade, ohlc and instrument
feeds (the book has its own module)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.market import OHLC_INTERVALS
from apps.sandbox.pairs import ASSETS, PAIRS, Pair
from apps.sandbox.util import rfc3339

from .book import BookChannel
from .connection import (
    BOOK_DEPTHS,
    PUBLIC_CHANNELS,
    BookView,
    Conn,
)


class PublicChannels(BookChannel):
    def subscribe(self, conn: Conn, params: dict[str, Any], req_id: Any, time_in: str) -> None:
        channel = params.get("channel")
        if channel in ("executions", "balances"):
            acct = self._auth(conn, params)
            self._subscribe_private(conn, str(channel), acct, params, req_id, time_in)
            return
        if channel == "instrument":
            conn.subs.add(("instrument", ""))
            self.instrument_subs.add(conn)
            conn.send(
                self._ack("subscribe", req_id, time_in, {"channel": "instrument", "snapshot": True})
            )
            if params.get("snapshot", True):
                conn.send(
                    self._frame(
                        {"channel": "instrument", "type": "snapshot", "data": self._instrument()}
                    )
                )
            return
        if channel not in PUBLIC_CHANNELS or channel in ("status", "heartbeat"):
            conn.send(self._ack("subscribe", req_id, time_in, error="Subscription name invalid"))
            return
        for sym in self._symbols(params):
            if isinstance(sym, str):
                conn.send(
                    self._ack(
                        "subscribe",
                        req_id,
                        time_in,
                        error=f"Currency pair not supported {sym}",
                        symbol=sym,
                    )
                )
                continue
            self._subscribe_public(conn, str(channel), sym, params, req_id, time_in)

    def _subscribe_public(
        self,
        conn: Conn,
        channel: str,
        pair: Pair,
        params: dict[str, Any],
        req_id: Any,
        time_in: str,
    ) -> None:
        snapshot = bool(params.get("snapshot", True))
        if channel == "book":
            depth = params.get("depth", 10)
            if depth not in BOOK_DEPTHS:
                conn.send(
                    self._ack(
                        "subscribe",
                        req_id,
                        time_in,
                        error="EGeneral:Invalid arguments:depth",
                        symbol=pair.symbol,
                    )
                )
                return
            if conn in self.book_subs[pair.id]:
                conn.send(
                    self._ack(
                        "subscribe", req_id, time_in, error="Already subscribed", symbol=pair.symbol
                    )
                )
                return
            # Publish pending changes first so the snapshot equals what existing
            # subscribers of this depth hold; later diffs then apply cleanly.
            if pair.id in self.dirty:
                self.dirty.discard(pair.id)
                self.publish_book(pair.id)
            self.book_subs[pair.id][conn] = depth
            conn.subs.add(("book", pair.symbol))
            conn.send(
                self._ack(
                    "subscribe",
                    req_id,
                    time_in,
                    {
                        "channel": "book",
                        "depth": depth,
                        "snapshot": snapshot,
                        "symbol": pair.symbol,
                    },
                )
            )
            view = self.views.get((pair.id, depth))
            if view is None:
                view = BookView(*self._levels(pair.id, depth))
                self.views[(pair.id, depth)] = view
            if snapshot:
                conn.send(
                    self._book_frame(
                        pair,
                        "snapshot",
                        sorted(view.bids.items(), reverse=True),
                        sorted(view.asks.items()),
                        view,
                    )
                )
            return
        if channel == "ticker":
            trig = params.get("event_trigger", "trades")
            self.ticker_subs[pair.id][conn] = str(trig)
            conn.subs.add(("ticker", pair.symbol))
            conn.send(
                self._ack(
                    "subscribe",
                    req_id,
                    time_in,
                    {
                        "channel": "ticker",
                        "event_trigger": trig,
                        "snapshot": snapshot,
                        "symbol": pair.symbol,
                    },
                )
            )
            if snapshot:
                conn.send(
                    self._frame(
                        {"channel": "ticker", "type": "snapshot", "data": [self._ticker(pair)]}
                    )
                )
            return
        if channel == "trade":
            self.trade_subs[pair.id].add(conn)
            conn.subs.add(("trade", pair.symbol))
            conn.send(
                self._ack(
                    "subscribe",
                    req_id,
                    time_in,
                    {"channel": "trade", "snapshot": snapshot, "symbol": pair.symbol},
                )
            )
            if snapshot:
                trades = list(self.engine.markets[pair.id].trades)[-50:]
                conn.send(
                    self._frame(
                        {
                            "channel": "trade",
                            "type": "snapshot",
                            "data": [self._trade(pair, trade) for trade in trades],
                        }
                    )
                )
            return
        if channel == "ohlc":
            interval = params.get("interval", 1)
            if interval not in OHLC_INTERVALS:
                conn.send(
                    self._ack(
                        "subscribe",
                        req_id,
                        time_in,
                        error="EGeneral:Invalid arguments:interval",
                        symbol=pair.symbol,
                    )
                )
                return
            self.ohlc_subs.setdefault((pair.id, interval), set()).add(conn)
            conn.subs.add(("ohlc", pair.symbol))
            conn.send(
                self._ack(
                    "subscribe",
                    req_id,
                    time_in,
                    {
                        "channel": "ohlc",
                        "interval": interval,
                        "snapshot": snapshot,
                        "symbol": pair.symbol,
                    },
                )
            )
            if snapshot:
                candles = list(self.engine.markets[pair.id].candles[interval])[-50:]
                conn.send(
                    self._frame(
                        {
                            "channel": "ohlc",
                            "type": "snapshot",
                            "data": [self._candle(pair, candle, interval) for candle in candles],
                        }
                    )
                )

    def unsubscribe(self, conn: Conn, params: dict[str, Any], req_id: Any, time_in: str) -> None:
        channel = str(params.get("channel"))
        if channel in ("executions", "balances", "instrument"):
            key = (channel, "")
            if key not in conn.subs:
                conn.send(self._ack("unsubscribe", req_id, time_in, error="Subscription Not Found"))
                return
            conn.subs.discard(key)
            if channel == "instrument":
                self.instrument_subs.discard(conn)
            else:
                target = self.exec_subs if channel == "executions" else self.balance_subs
                for subscribers in target.values():
                    subscribers.discard(conn)
            conn.send(self._ack("unsubscribe", req_id, time_in, {"channel": channel}))
            return
        for sym in self._symbols(params):
            name = sym.symbol if isinstance(sym, Pair) else sym
            if not isinstance(sym, Pair) or (channel, name) not in conn.subs:
                conn.send(
                    self._ack(
                        "unsubscribe", req_id, time_in, error="Subscription Not Found", symbol=name
                    )
                )
                continue
            conn.subs.discard((channel, name))
            result: dict[str, Any] = {"channel": channel, "symbol": name}
            if channel == "book":
                result["depth"] = self.book_subs[sym.id].pop(conn, 10)
            elif channel == "ticker":
                result["event_trigger"] = self.ticker_subs[sym.id].pop(conn, "trades")
            elif channel == "trade":
                self.trade_subs[sym.id].discard(conn)
            elif channel == "ohlc":
                for (pid, interval), subscribers in self.ohlc_subs.items():
                    if pid == sym.id and conn in subscribers:
                        subscribers.discard(conn)
                        result["interval"] = interval
            conn.send(self._ack("unsubscribe", req_id, time_in, result))

    # ------------------------------------------------------------------ other public
    def _ticker(self, pair: Pair) -> dict[str, Any]:
        engine = self.engine
        market = engine.markets[pair.id]
        bid = engine.book_levels(pair.id, "bid", 1)
        ask = engine.book_levels(pair.id, "ask", 1)
        vol, vwap, _count, low, high, opn = market.stats(engine.now() - 86400)
        change = market.last_price - opn
        pct = (change / opn * 100).quantize(Decimal("0.01")) if opn else Decimal(0)
        return {
            "symbol": pair.symbol,
            "bid": bid[0][0] if bid else market.mid,
            "bid_qty": bid[0][1] if bid else Decimal(0),
            "ask": ask[0][0] if ask else market.mid,
            "ask_qty": ask[0][1] if ask else Decimal(0),
            "last": market.last_price,
            "volume": vol.quantize(pair.lot_q),
            "vwap": vwap.quantize(pair.price_q),
            "low": low,
            "high": high,
            "change": change.quantize(pair.price_q),
            "change_pct": pct,
        }

    @staticmethod
    def _trade(pair: Pair, trade: Any) -> dict[str, Any]:
        return {
            "symbol": pair.symbol,
            "side": "buy" if trade.side == "b" else "sell",
            "price": trade.price,
            "qty": trade.qty.quantize(pair.lot_q),
            "ord_type": "market" if trade.ordtype == "m" else "limit",
            "trade_id": trade.trade_id,
            "timestamp": rfc3339(trade.time),
        }

    @staticmethod
    def _candle(pair: Pair, candle: Any, interval: int) -> dict[str, Any]:
        return {
            "symbol": pair.symbol,
            "open": candle.open,
            "high": candle.high,
            "low": candle.low,
            "close": candle.close,
            "trades": candle.count,
            "volume": candle.volume.quantize(pair.lot_q),
            "vwap": candle.vwap().quantize(pair.price_q),
            "interval_begin": rfc3339(candle.begin),
            "interval": interval,
            "timestamp": rfc3339(candle.begin + interval * 60),
        }

    def _instrument_pair(self, pair: Pair) -> dict[str, Any]:
        return {
            "symbol": pair.symbol,
            "base": ASSETS[pair.base].ws,
            "quote": ASSETS[pair.quote].ws,
            "status": self.engine.pair_status.get(pair.id, "online"),
            "qty_precision": pair.lot_decimals,
            "qty_increment": pair.lot_q,
            "price_precision": pair.pair_decimals,
            "price_increment": pair.tick_size,
            "cost_precision": pair.cost_decimals,
            "cost_min": pair.costmin,
            "qty_min": pair.ordermin,
            "marginable": bool(pair.leverage),
            "has_index": True,
        }

    def publish_pair_status(self, pair: Pair) -> None:
        """Kraken pushes an ``instrument`` update when a pair's reference data (its status
        included) changes; the update carries the changed pair only."""
        frame = self._frame(
            {
                "channel": "instrument",
                "type": "update",
                "data": {"assets": [], "pairs": [self._instrument_pair(pair)]},
            }
        )
        for conn in list(self.instrument_subs):
            conn.send(frame)

    def _instrument(self) -> dict[str, Any]:
        return {
            "assets": [
                {
                    "id": asset_info.ws,
                    "status": "enabled",
                    "precision": asset_info.decimals,
                    "precision_display": asset_info.display_decimals,
                    "borrowable": False,
                    "collateral_value": asset_info.collateral_value,
                    "margin_rate": Decimal(0),
                }
                for asset_info in ASSETS.values()
            ],
            "pairs": [self._instrument_pair(pair) for pair in PAIRS.values()],
        }

    def publish_market(self) -> None:
        """Per tick: trades, ticker and OHLC updates for subscribed pairs."""
        for pid, market in self.engine.markets.items():
            pair = PAIRS[pid]
            last = self.last_trade_id[pid]
            new = (
                [trade for trade in market.trades if trade.trade_id > last]
                if market.trades and (market.trades[-1].trade_id > last)
                else []
            )
            if new:
                self.last_trade_id[pid] = new[-1].trade_id
                if self.trade_subs[pid]:
                    frame = self._frame(
                        {
                            "channel": "trade",
                            "type": "update",
                            "data": [self._trade(pair, trade) for trade in new],
                        }
                    )
                    for conn in self.trade_subs[pid]:
                        conn.send(frame)
                for (opid, interval), conns in self.ohlc_subs.items():
                    if opid == pid and conns:
                        frame = self._frame(
                            {
                                "channel": "ohlc",
                                "type": "update",
                                "data": [
                                    self._candle(pair, market.candles[interval][-1], interval)
                                ],
                            }
                        )
                        for conn in conns:
                            conn.send(frame)
            tsubs = self.ticker_subs[pid]
            if tsubs:
                data = self._ticker(pair)
                bbo = (data["bid"], data["bid_qty"], data["ask"], data["ask_qty"])
                changed_bbo = self.last_ticker.get(pid) != bbo
                self.last_ticker[pid] = bbo
                frame = self._frame({"channel": "ticker", "type": "update", "data": [data]})
                for conn, trig in tsubs.items():
                    if (trig == "bbo" and changed_bbo) or (trig == "trades" and new):
                        conn.send(frame)
