"""WebSocket API v2: public market data and private executions/balances/trading.

Every connection has an outbound queue and a writer task, so broadcasting to many
subscribers is a cheap ``put_nowait`` of a pre-serialised frame and a slow client cannot
stall the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from .earn import STRATEGIES
from .engine import Account, Engine
from .errors import KrakenError
from .market import OHLC_INTERVALS
from .pairs import ASSETS, PAIRS, PAIRS_BY_SYMBOL, Pair, fmt
from .private import ADD_FIELDS, Ctx, add_order, amend_order, cancel_all, cancel_all_after
from .util import dumps, rfc3339

D = Decimal
LOG = logging.getLogger("apps.sandbox.ws")
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
PUBLIC_CHANNELS = frozenset(
    {"book", "ticker", "trade", "ohlc", "instrument", "status", "heartbeat"}
)
PRIVATE_CHANNELS = frozenset({"executions", "balances", "level3"})
WS_VERSION = "2.0.10"
MAX_QUEUE = 20_000  # outbound frames buffered per connection before it is dropped


def checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken v2 book CRC32 over the top 10 asks (low→high) then bids (high→low), each
    price and qty with the decimal point and leading zeros removed."""
    parts: list[str] = []
    for price, qty in asks[:10] + bids[:10]:
        parts.append(price.replace(".", "").lstrip("0"))
        parts.append(qty.replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


@dataclass(eq=False)
class Conn:
    ws: web.WebSocketResponse
    private: bool
    conn_id: int
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    account: Account | None = None
    subs: set[tuple[str, str]] = field(default_factory=set)  # (channel, symbol|"")
    seq: dict[str, int] = field(default_factory=dict)
    last_sent: float = 0.0
    exec_opts: dict[str, Any] = field(default_factory=dict)
    dead: bool = False

    def send(self, text: str) -> None:
        if self.dead:
            return
        if self.queue.qsize() >= MAX_QUEUE:
            # A consumer this far behind would be cut off by Kraken too; drop it rather
            # than buffer without bound.
            self.dead = True
            transport = self.ws._req.transport if self.ws._req else None
            if transport is not None:
                transport.abort()
            return
        self.queue.put_nowait(text)

    def next_seq(self, channel: str) -> int:
        self.seq[channel] = self.seq.get(channel, 0) + 1
        return self.seq[channel]


Level = tuple[Decimal, Decimal]


@dataclass
class BookView:
    """What one depth's subscribers have been told: the last published top-N levels."""

    bids: dict[Decimal, Decimal]
    asks: dict[Decimal, Decimal]


class WsHub:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.conns: set[Conn] = set()
        self.book_subs: dict[str, dict[Conn, int]] = {p: {} for p in PAIRS}
        self.views: dict[tuple[str, int], BookView] = {}
        self.ticker_subs: dict[str, dict[Conn, str]] = {p: {} for p in PAIRS}
        self.trade_subs: dict[str, set[Conn]] = {p: set() for p in PAIRS}
        self.ohlc_subs: dict[tuple[str, int], set[Conn]] = {}
        self.instrument_subs: set[Conn] = set()
        self.exec_subs: dict[str, set[Conn]] = {}
        self.balance_subs: dict[str, set[Conn]] = {}
        self.dirty: set[str] = set()
        self._flush_scheduled = False
        self.last_trade_id: dict[str, int] = {
            p: (m.trades[-1].trade_id if m.trades else 0) for p, m in engine.markets.items()
        }
        self.last_ticker: dict[str, tuple[Any, ...]] = {}
        self._rng = random.Random(seed ^ 0xC0)  # noqa: S311 - connection ids only
        self.book_messages = 0
        engine.listeners.append(self.on_event)
        engine.exec_interest = lambda account_id: bool(self.exec_subs.get(account_id))
        engine.book_listeners.append(self.mark_dirty)

    # ------------------------------------------------------------------ plumbing
    def mark_dirty(self, pair: str) -> None:
        if not self.book_subs[pair]:
            return
        self.dirty.add(pair)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self.flush)
                return
            self._flush_scheduled = False

    def flush(self) -> None:
        self._flush_scheduled = False
        pairs, self.dirty = self.dirty, set()
        for pid in pairs:
            self.publish_book(pid)

    @staticmethod
    def _frame(msg: dict[str, Any]) -> str:
        return dumps(msg)

    def _ack(
        self,
        method: str,
        req_id: Any,
        time_in: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        **extra: Any,
    ) -> str:
        msg: dict[str, Any] = {"method": method}
        if result is not None:
            msg["result"] = result
        msg["success"] = error is None
        if error is not None:
            msg["error"] = error
        msg.update(extra)
        msg["time_in"] = time_in
        msg["time_out"] = rfc3339(self.engine.now())
        if req_id is not None:
            msg["req_id"] = req_id
        return self._frame(msg)

    # ------------------------------------------------------------------ connection
    async def handle(self, request: web.Request, private: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws=ws, private=private, conn_id=self._rng.getrandbits(63))
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        conn.send(self._status_frame(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.on_message(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.drop(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    async def _writer(self, conn: Conn) -> None:
        try:
            while True:
                text = await conn.queue.get()
                if text is None or conn.ws.closed or conn.dead:
                    return
                await conn.ws.send_str(text)
                conn.last_sent = self.engine.now()
        except (ConnectionError, RuntimeError):
            return

    def drop(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for subs in self.book_subs.values():
            subs.pop(conn, None)
        for tsubs in self.ticker_subs.values():
            tsubs.pop(conn, None)
        for s in self.trade_subs.values():
            s.discard(conn)
        for s in self.ohlc_subs.values():
            s.discard(conn)
        self.instrument_subs.discard(conn)
        for s in self.exec_subs.values():
            s.discard(conn)
        for s in self.balance_subs.values():
            s.discard(conn)

    async def disconnect_all(self) -> None:
        """Fault: drop every socket abruptly (clients see 1006 and must reconnect)."""
        for conn in list(self.conns):
            transport = conn.ws._req.transport if conn.ws._req else None
            if transport is not None:
                transport.abort()
            self.drop(conn)

    def _status_frame(self, conn: Conn) -> str:
        return self._frame(
            {
                "channel": "status",
                "type": "update",
                "data": [
                    {
                        "version": WS_VERSION,
                        "system": self.engine.status,
                        "api_version": "v2",
                        "connection_id": conn.conn_id,
                    }
                ],
            }
        )

    def broadcast_status(self) -> None:
        """Kraken pushes a status update to every connection when the system mode changes."""
        for conn in list(self.conns):
            conn.send(self._status_frame(conn))

    def heartbeat(self) -> None:
        now = self.engine.now()
        frame = '{"channel":"heartbeat"}'
        for conn in list(self.conns):
            if conn.subs and now - conn.last_sent >= 1.0:
                conn.send(frame)

    # ------------------------------------------------------------------ requests
    def on_message(self, conn: Conn, text: str) -> None:
        time_in = rfc3339(self.engine.now())
        try:
            msg = json.loads(text, parse_float=Decimal)
        except ValueError:
            conn.send(
                self._frame(
                    {
                        "error": "Malformed request",
                        "success": False,
                        "time_in": time_in,
                        "time_out": time_in,
                    }
                )
            )
            return
        if not isinstance(msg, dict):
            conn.send(self._ack("", None, time_in, error="Malformed request"))
            return
        method = msg.get("method")
        req_id = msg.get("req_id")
        params = msg.get("params") or {}
        if not isinstance(params, dict):
            conn.send(self._ack(str(method), req_id, time_in, error="Malformed request"))
            return
        try:
            if method == "ping":
                out: dict[str, Any] = {"method": "pong"}
                if req_id is not None:
                    out["req_id"] = req_id
                out["time_in"] = time_in
                out["time_out"] = rfc3339(self.engine.now())
                conn.send(self._frame(out))
            elif method == "subscribe":
                self.subscribe(conn, params, req_id, time_in)
            elif method == "unsubscribe":
                self.unsubscribe(conn, params, req_id, time_in)
            elif method in (
                "add_order",
                "amend_order",
                "cancel_order",
                "cancel_all",
                "cancel_all_orders_after",
                "edit_order",
                "batch_add",
                "batch_cancel",
            ):
                self.trade(conn, str(method), params, req_id, time_in)
            else:
                conn.send(self._ack(str(method), req_id, time_in, error="Method not found"))
        except KrakenError as err:
            conn.send(self._ack(str(method), req_id, time_in, error=err.error))
        except Exception:  # a bug must not kill the socket or leak a traceback
            LOG.exception("ws request failed: %.200s", text)
            conn.send(self._ack(str(method), req_id, time_in, error="EGeneral:Internal error"))

    def _symbols(self, params: dict[str, Any]) -> list[Pair | str]:
        syms = params.get("symbol")
        if not isinstance(syms, list) or not syms:
            raise KrakenError("EGeneral:Invalid arguments:symbol")
        return [PAIRS_BY_SYMBOL.get(s, s) if isinstance(s, str) else json.dumps(s) for s in syms]

    def _auth(self, conn: Conn, params: dict[str, Any]) -> Account:
        token = params.get("token")
        if not conn.private:
            raise KrakenError("EGeneral:Permission denied")
        # A token used by a live subscription stays valid for that connection; tokens are
        # unique, so the connection's own account answers without scanning every account.
        if conn.account is not None and str(token) in conn.account.ws_tokens:
            return conn.account
        now = self.engine.now()
        for acct in self.engine.accounts.values():
            exp = acct.ws_tokens.get(str(token))
            if exp is not None and exp > now:
                conn.account = acct
                return acct
        raise KrakenError("EAPI:Invalid token")

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
                            "data": [self._trade(pair, t) for t in trades],
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
                            "data": [self._candle(pair, c, interval) for c in candles],
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
                for s in target.values():
                    s.discard(conn)
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
                for (pid, interval), s in self.ohlc_subs.items():
                    if pid == sym.id and conn in s:
                        s.discard(conn)
                        result["interval"] = interval
            conn.send(self._ack("unsubscribe", req_id, time_in, result))

    # ------------------------------------------------------------------ book
    def _levels(
        self, pid: str, depth: int
    ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        return (
            dict(self.engine.book_levels(pid, "bid", depth)),
            dict(self.engine.book_levels(pid, "ask", depth)),
        )

    def _book_frame(
        self, pair: Pair, kind: str, bids: list[Level], asks: list[Level], view: BookView
    ) -> str:
        pd, ld = pair.pair_decimals, pair.lot_decimals
        top_a = sorted(view.asks.items())[:10]
        top_b = sorted(view.bids.items(), reverse=True)[:10]
        crc = checksum(
            [(fmt(p, pd), fmt(q, ld)) for p, q in top_a],
            [(fmt(p, pd), fmt(q, ld)) for p, q in top_b],
        )
        data: dict[str, Any] = {
            "symbol": pair.symbol,
            "bids": [
                {"price": p.quantize(pair.price_q), "qty": q.quantize(pair.lot_q)} for p, q in bids
            ],
            "asks": [
                {"price": p.quantize(pair.price_q), "qty": q.quantize(pair.lot_q)} for p, q in asks
            ],
            "checksum": crc,
        }
        if kind == "update":
            data["timestamp"] = rfc3339(self.engine.now())
        return self._frame({"channel": "book", "type": kind, "data": [data]})

    def publish_book(self, pid: str) -> None:
        subs = self.book_subs[pid]
        if not subs:
            return
        pair = PAIRS[pid]
        m = self.engine.markets[pid]
        by_depth: dict[int, list[Conn]] = {}
        for conn, depth in subs.items():
            by_depth.setdefault(depth, []).append(conn)
        for depth, conns in by_depth.items():
            view = self.views.get((pid, depth))
            new_b, new_a = self._levels(pid, depth)
            if view is None:
                self.views[(pid, depth)] = BookView(new_b, new_a)
                continue
            diff: list[list[Level]] = []
            for old, new, synth in ((view.bids, new_b, m.bids), (view.asks, new_a, m.asks)):
                changes: list[Level] = [(p, q) for p, q in new.items() if old.get(p) != q]
                # Levels pushed out of scope are truncated by the client; only levels
                # that vanished from the book are sent with qty 0.
                changes.extend(
                    (p, D(0))
                    for p in old
                    if p not in new and p not in synth and not self._user_level(pid, p)
                )
                diff.append(changes)
            view.bids, view.asks = new_b, new_a
            if not diff[0] and not diff[1]:
                continue
            bids = sorted(diff[0], key=lambda x: -x[0])
            asks = sorted(diff[1])
            frame = self._book_frame(pair, "update", bids, asks, view)
            self.book_messages += len(conns)
            for conn in conns:
                conn.send(frame)

    def _user_level(self, pid: str, price: Decimal) -> bool:
        for side in ("buy", "sell"):
            for o in self.engine.book_orders[(pid, side)]:
                if o.resting_limit() == price:
                    return True
        return False

    # ------------------------------------------------------------------ other public
    def _ticker(self, pair: Pair) -> dict[str, Any]:
        e = self.engine
        m = e.markets[pair.id]
        bid = e.book_levels(pair.id, "bid", 1)
        ask = e.book_levels(pair.id, "ask", 1)
        vol, vwap, _count, low, high, opn = m.stats(e.now() - 86400)
        change = m.last_price - opn
        pct = (change / opn * 100).quantize(D("0.01")) if opn else D(0)
        return {
            "symbol": pair.symbol,
            "bid": bid[0][0] if bid else m.mid,
            "bid_qty": bid[0][1] if bid else D(0),
            "ask": ask[0][0] if ask else m.mid,
            "ask_qty": ask[0][1] if ask else D(0),
            "last": m.last_price,
            "volume": vol.quantize(pair.lot_q),
            "vwap": vwap.quantize(pair.price_q),
            "low": low,
            "high": high,
            "change": change.quantize(pair.price_q),
            "change_pct": pct,
        }

    @staticmethod
    def _trade(pair: Pair, t: Any) -> dict[str, Any]:
        return {
            "symbol": pair.symbol,
            "side": "buy" if t.side == "b" else "sell",
            "price": t.price,
            "qty": t.qty.quantize(pair.lot_q),
            "ord_type": "market" if t.ordtype == "m" else "limit",
            "trade_id": t.trade_id,
            "timestamp": rfc3339(t.time),
        }

    @staticmethod
    def _candle(pair: Pair, c: Any, interval: int) -> dict[str, Any]:
        return {
            "symbol": pair.symbol,
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "trades": c.count,
            "volume": c.volume.quantize(pair.lot_q),
            "vwap": c.vwap().quantize(pair.price_q),
            "interval_begin": rfc3339(c.begin),
            "interval": interval,
            "timestamp": rfc3339(c.begin + interval * 60),
        }

    @staticmethod
    def _instrument() -> dict[str, Any]:
        return {
            "assets": [
                {
                    "id": a.ws,
                    "status": "enabled",
                    "precision": a.decimals,
                    "precision_display": a.display_decimals,
                    "borrowable": False,
                    "collateral_value": a.collateral_value,
                    "margin_rate": D(0),
                }
                for a in ASSETS.values()
            ],
            "pairs": [
                {
                    "symbol": p.symbol,
                    "base": ASSETS[p.base].ws,
                    "quote": ASSETS[p.quote].ws,
                    "status": "online",
                    "qty_precision": p.lot_decimals,
                    "qty_increment": p.lot_q,
                    "price_precision": p.pair_decimals,
                    "price_increment": p.tick_size,
                    "cost_precision": p.cost_decimals,
                    "cost_min": p.costmin,
                    "qty_min": p.ordermin,
                    "marginable": bool(p.leverage),
                    "has_index": True,
                }
                for p in PAIRS.values()
            ],
        }

    def publish_market(self) -> None:
        """Per tick: trades, ticker and OHLC updates for subscribed pairs."""
        for pid, m in self.engine.markets.items():
            pair = PAIRS[pid]
            last = self.last_trade_id[pid]
            new = (
                [t for t in m.trades if t.trade_id > last]
                if m.trades and (m.trades[-1].trade_id > last)
                else []
            )
            if new:
                self.last_trade_id[pid] = new[-1].trade_id
                if self.trade_subs[pid]:
                    frame = self._frame(
                        {
                            "channel": "trade",
                            "type": "update",
                            "data": [self._trade(pair, t) for t in new],
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
                                "data": [self._candle(pair, m.candles[interval][-1], interval)],
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

    # ------------------------------------------------------------------ private
    def _order_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        out = []
        for t in acct.open_ids:
            o = acct.orders[t]
            pair = PAIRS[o.pair]
            d: dict[str, Any] = {
                "order_id": o.txid,
                "symbol": pair.symbol,
                "order_qty": o.volume,
                "cum_qty": o.vol_exec,
                "cum_cost": o.cost,
                "order_type": o.ordertype,
                "side": o.side,
                "time_in_force": o.timeinforce,
                "order_status": "partially_filled"
                if o.vol_exec
                else ("new" if o.status == "open" else "pending_new"),
                "exec_type": "pending_new" if o.status == "pending" else "new",
                "order_userref": o.userref or 0,
                "timestamp": rfc3339(o.opentm),
                "fee_usd_equiv": o.fee,
                "fee_ccy_pref": "fcib" if "fcib" in o.oflags else "fciq",
            }
            lim = o.price2 if o.ordertype.endswith("-limit") else o.price
            if lim is not None:
                d["limit_price"] = lim
            if o.cl_ord_id:
                d["cl_ord_id"] = o.cl_ord_id
            if o.vol_exec:
                d["avg_price"] = (o.cost / o.vol_exec).quantize(pair.price_q)
            out.append(d)
        return out

    def _trade_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        out = []
        for tid, t in list(acct.trades.items())[-50:]:
            pair = PAIRS[t["pair"]]
            out.append(
                {
                    "order_id": t["ordertxid"],
                    "exec_id": tid,
                    "exec_type": "trade",
                    "trade_id": t["trade_id"],
                    "symbol": pair.symbol,
                    "side": t["type"],
                    "last_qty": t["vol"],
                    "last_price": t["price"],
                    "liquidity_ind": "m" if t["maker"] else "t",
                    "cost": t["cost"],
                    "order_status": "filled",
                    "order_type": t["ordertype"],
                    "timestamp": rfc3339(t["time"]),
                    "fees": [{"asset": ASSETS[t["fee_asset"]].ws, "qty": t["fee"]}],
                }
            )
        return out

    def _balances_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        earn: dict[str, Decimal] = {}
        for sid, amt in acct.earn.items():
            s = STRATEGIES.get(sid)
            if s:
                earn[s.asset] = earn.get(s.asset, D(0)) + amt + acct.earn_rewards.get(sid, D(0))
        out = []
        for asset in sorted(set(acct.balances) | set(earn)):
            a = ASSETS[asset]
            spot = acct.balances.get(asset, D(0)).quantize(D(1).scaleb(-a.decimals))
            wallets: list[dict[str, Any]] = [{"type": "spot", "id": "main", "balance": spot}]
            total = spot
            if asset in earn:
                flex = earn[asset].quantize(D(1).scaleb(-a.decimals))
                wallets.append({"type": "earn", "id": "flex", "balance": flex})
                total += flex
            out.append(
                {"asset": a.ws, "asset_class": "currency", "balance": total, "wallets": wallets}
            )
        return out

    def _subscribe_private(
        self,
        conn: Conn,
        channel: str,
        acct: Account,
        params: dict[str, Any],
        req_id: Any,
        time_in: str,
    ) -> None:
        conn.subs.add((channel, ""))
        if channel == "executions":
            self.exec_subs.setdefault(acct.id, set()).add(conn)
            conn.exec_opts = {"order_status": params.get("order_status", True)}
            tier = self.engine.tier_of(acct)
            result: dict[str, Any] = {"channel": "executions", "snapshot": True}
            if params.get("ratecounter"):
                result["maxratecount"] = int(tier.trade_max)
            conn.send(self._ack("subscribe", req_id, time_in, result))
            data: list[dict[str, Any]] = []
            if params.get("snap_orders", True):
                data.extend(self._order_snapshot(acct))
            if params.get("snap_trades", False):
                data.extend(self._trade_snapshot(acct))
            conn.send(
                self._frame(
                    {
                        "channel": "executions",
                        "type": "snapshot",
                        "data": data,
                        "sequence": conn.next_seq("executions"),
                    }
                )
            )
        else:
            self.balance_subs.setdefault(acct.id, set()).add(conn)
            conn.send(
                self._ack("subscribe", req_id, time_in, {"channel": "balances", "snapshot": True})
            )
            conn.send(
                self._frame(
                    {
                        "channel": "balances",
                        "type": "snapshot",
                        "data": self._balances_snapshot(acct),
                        "sequence": conn.next_seq("balances"),
                    }
                )
            )

    def on_event(self, account_id: str, kind: str, payload: dict[str, Any]) -> None:
        if kind == "execution":
            conns = self.exec_subs.get(account_id)
            if not conns:
                return
            for conn in conns:
                if not conn.exec_opts.get("order_status", True) and payload["exec_type"] in (
                    "pending_new",
                    "trade",
                    "amended",
                    "restated",
                ):
                    continue
                conn.send(
                    self._frame(
                        {
                            "channel": "executions",
                            "type": "update",
                            "data": [payload],
                            "sequence": conn.next_seq("executions"),
                        }
                    )
                )
        elif kind == "ledger":
            conns = self.balance_subs.get(account_id)
            if not conns:
                return
            a = ASSETS.get(payload["asset"])
            data = {
                "ledger_id": payload["id"],
                "ref_id": payload["refid"],
                "timestamp": rfc3339(payload["time"]),
                "type": payload["type"],
                "subtype": payload["subtype"],
                "category": payload["type"],
                "asset": a.ws if a else payload["asset"],
                "asset_class": "currency",
                "amount": payload["amount"],
                "fee": payload["fee"],
                "balance": payload["balance"],
                "wallet_type": "spot",
                "wallet_id": "main",
            }
            for conn in conns:
                conn.send(
                    self._frame(
                        {
                            "channel": "balances",
                            "type": "update",
                            "data": [data],
                            "sequence": conn.next_seq("balances"),
                        }
                    )
                )

    # ------------------------------------------------------------------ trading
    def trade(
        self, conn: Conn, method: str, params: dict[str, Any], req_id: Any, time_in: str
    ) -> None:
        acct = self._auth(conn, params)
        e = self.engine
        key = next(iter(k for k in e.auth.keys.values() if k.account_id == acct.id), None)
        if key is None:
            raise KrakenError("EGeneral:Permission denied")
        result: dict[str, Any]
        if method == "add_order":
            rest = self._ws_to_rest(params)
            out = add_order(Ctx(e, acct, key, rest, form=False))
            result = {"order_id": out.get("txid", [""])[0]}
            if "cl_ord_id" in params:
                result["cl_ord_id"] = params["cl_ord_id"]
            if "order_userref" in params:
                result["order_userref"] = params["order_userref"]
        elif method == "amend_order":
            rest = {
                "txid": params.get("order_id"),
                "cl_ord_id": params.get("cl_ord_id"),
                "order_qty": params.get("order_qty"),
                "limit_price": params.get("limit_price"),
                "trigger_price": params.get("trigger_price"),
                "display_qty": params.get("display_qty"),
                "post_only": params.get("post_only"),
            }
            rest = {
                k: str(v) if isinstance(v, Decimal) else v for k, v in rest.items() if v is not None
            }
            out = amend_order(Ctx(e, acct, key, rest, form=False))
            result = {"amend_id": out["amend_id"]}
            for k in ("order_id", "cl_ord_id"):
                if k in params:
                    result[k] = params[k]
        elif method in ("cancel_order", "batch_cancel"):
            ids = params.get("order_id") or params.get("orders") or []
            cls = params.get("cl_ord_id") or []
            if not isinstance(ids, list) or not isinstance(cls, list) or not (ids or cls):
                raise KrakenError("EGeneral:Invalid arguments:order_id")
            e.check_can_cancel()
            # WS v2 uses one string for already-gone and never-valid ids (FACTS §5.6).
            for ident in ids:
                o = acct.orders.get(str(ident))
                if o is None or not o.is_open:
                    raise KrakenError("EOrder:Invalid order")
                e.cancel_with_penalty(acct, o)
            for cl in cls:
                o2 = e.order_by_cl(acct, str(cl))
                if o2 is None:
                    raise KrakenError("EOrder:Invalid order")
                e.cancel_with_penalty(acct, o2)
            result = (
                {"order_id": ids[0]}
                if len(ids) == 1
                else (
                    {"cl_ord_id": cls[0]}
                    if len(cls) == 1 and not ids
                    else {"count": len(ids) + len(cls)}
                )
            )
        elif method == "cancel_all":
            result = cancel_all(Ctx(e, acct, key, {}, form=False))
        elif method == "cancel_all_orders_after":
            out = cancel_all_after(
                Ctx(e, acct, key, {"timeout": params.get("timeout")}, form=False)
            )
            result = out
        elif method == "batch_add":
            orders = params.get("orders")
            sym = PAIRS_BY_SYMBOL.get(str(params.get("symbol")))
            if sym is None:
                raise KrakenError("EQuery:Unknown asset pair")
            if not isinstance(orders, list) or not 2 <= len(orders) <= 15:
                raise KrakenError("EGeneral:Invalid arguments:orders")
            results = []
            for item in orders:
                rest = self._ws_to_rest({**item, "symbol": sym.symbol})
                out = add_order(Ctx(e, acct, key, rest, form=False))
                results.append({"order_id": out.get("txid", [""])[0]})
            result = results  # type: ignore[assignment]
        else:
            raise KrakenError("EGeneral:Invalid arguments")
        conn.send(self._ack(method, req_id, time_in, result))

    @staticmethod
    def _ws_to_rest(p: dict[str, Any]) -> dict[str, Any]:
        """Translate WS v2 add_order spellings into AddOrder's REST parameters."""

        def s(v: Any) -> str:
            return format(v, "f") if isinstance(v, Decimal) else str(v)

        allowed = {
            "order_type",
            "side",
            "order_qty",
            "symbol",
            "limit_price",
            "limit_price_type",
            "triggers",
            "time_in_force",
            "post_only",
            "reduce_only",
            "fee_preference",
            "no_mpp",
            "order_userref",
            "cl_ord_id",
            "display_qty",
            "effective_time",
            "expire_time",
            "deadline",
            "validate",
            "stp_type",
            "conditional",
            "margin",
            "token",
            "cash_order_qty",
        }
        for k in p:
            if k not in allowed:
                raise KrakenError(f"EGeneral:Invalid arguments:Unsupported field: '{k}'")
        rest: dict[str, Any] = {
            "pair": s(p.get("symbol", "")),
            "type": p.get("side"),
            "ordertype": p.get("order_type"),
        }
        if "order_qty" in p:
            rest["volume"] = s(p["order_qty"])
        elif "cash_order_qty" in p:
            rest["volume"] = s(p["cash_order_qty"])
        flags = []
        if p.get("post_only"):
            flags.append("post")
        if p.get("no_mpp"):
            flags.append("nompp")
        if p.get("fee_preference") == "base":
            flags.append("fcib")
        elif p.get("fee_preference") == "quote":
            flags.append("fciq")
        if "cash_order_qty" in p:
            flags.append("viqc")
        if flags:
            rest["oflags"] = ",".join(flags)
        ot = str(p.get("order_type"))
        trig = p.get("triggers") if isinstance(p.get("triggers"), dict) else None
        if trig is not None:
            price = s(trig.get("price"))
            ptype = trig.get("price_type", "static")
            if ot.startswith("trailing"):
                price = "+" + price.lstrip("+") + ("%" if ptype == "pct" else "")
            elif ptype == "pct":
                price = price + "%"
            rest["price"] = price
            if trig.get("reference") == "index":
                rest["trigger"] = "index"
            if "limit_price" in p:
                rest["price2"] = s(p["limit_price"])
        elif "limit_price" in p:
            rest["price"] = s(p["limit_price"])
        if "time_in_force" in p:
            rest["timeinforce"] = str(p["time_in_force"]).upper()
        if "order_userref" in p:
            rest["userref"] = p["order_userref"]
        if "cl_ord_id" in p:
            rest["cl_ord_id"] = p["cl_ord_id"]
        if "display_qty" in p:
            rest["displayvol"] = s(p["display_qty"])
        if "stp_type" in p:
            rest["stptype"] = str(p["stp_type"]).replace("_", "-")
        if "deadline" in p:
            rest["deadline"] = p["deadline"]
        if p.get("validate"):
            rest["validate"] = True
        for src, dst in (("effective_time", "starttm"), ("expire_time", "expiretm")):
            if src in p:
                from .util import parse_rfc3339

                t = parse_rfc3339(str(p[src]))
                if t is None:
                    raise KrakenError(f"EGeneral:Invalid arguments:{src}")
                rest[dst] = str(int(t))
        cond = p.get("conditional")
        if isinstance(cond, dict):
            close: dict[str, str] = {"ordertype": str(cond.get("order_type"))}
            if "trigger_price" in cond:
                close["price"] = s(cond["trigger_price"])
            elif "limit_price" in cond:
                close["price"] = s(cond["limit_price"])
            if "trigger_price" in cond and "limit_price" in cond:
                close["price2"] = s(cond["limit_price"])
            rest["close"] = close
        return {k: v for k, v in rest.items() if k in ADD_FIELDS}
