"""WebSocket connections: the per-connection outbound queue and writer, frames and acks,
the status frame, heartbeats, dropping sockets and token authentication."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from apps.sandbox.engine import Account, Engine
from apps.sandbox.errors import KrakenError
from apps.sandbox.faults import Faults
from apps.sandbox.pairs import PAIRS, PAIRS_BY_SYMBOL, Pair
from apps.sandbox.util import dumps, rfc3339

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
    mute_acks: bool = False  # fault: this request's answer is lost

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


class HubBase:
    """Connections and subscription registries; the channel parts below add behaviour."""

    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.faults: Faults | None = None  # set by the server; None: no fault injection
        self.conns: set[Conn] = set()
        self.book_subs: dict[str, dict[Conn, int]] = {pair_id: {} for pair_id in PAIRS}
        self.views: dict[tuple[str, int], BookView] = {}
        self.ticker_subs: dict[str, dict[Conn, str]] = {pair_id: {} for pair_id in PAIRS}
        self.trade_subs: dict[str, set[Conn]] = {pair_id: set() for pair_id in PAIRS}
        self.ohlc_subs: dict[tuple[str, int], set[Conn]] = {}
        self.instrument_subs: set[Conn] = set()
        self.exec_subs: dict[str, set[Conn]] = {}
        self.balance_subs: dict[str, set[Conn]] = {}
        self.dirty: set[str] = set()
        self._flush_scheduled = False
        self.last_trade_id: dict[str, int] = {
            pair_id: (market.trades[-1].trade_id if market.trades else 0)
            for pair_id, market in engine.markets.items()
        }
        self.last_ticker: dict[str, tuple[Any, ...]] = {}
        self._rng = random.Random(seed ^ 0xC0)  # noqa: S311 - connection ids only
        self.book_messages = 0

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
        for subscribers in self.trade_subs.values():
            subscribers.discard(conn)
        for subscribers in self.ohlc_subs.values():
            subscribers.discard(conn)
        self.instrument_subs.discard(conn)
        for subscribers in self.exec_subs.values():
            subscribers.discard(conn)
        for subscribers in self.balance_subs.values():
            subscribers.discard(conn)

    def abort(self, conn: Conn) -> None:
        """Fault: cut one socket without a close frame (the client sees 1006)."""
        transport = conn.ws._req.transport if conn.ws._req else None
        if transport is not None:
            transport.abort()
        conn.dead = True
        self.drop(conn)

    async def disconnect_all(self) -> None:
        """Fault: drop every socket abruptly (clients see 1006 and must reconnect)."""
        for conn in list(self.conns):
            self.abort(conn)

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

    def _symbols(self, params: dict[str, Any]) -> list[Pair | str]:
        syms = params.get("symbol")
        if not isinstance(syms, list) or not syms:
            raise KrakenError("EGeneral:Invalid arguments:symbol")
        return [
            PAIRS_BY_SYMBOL.get(symbol, symbol) if isinstance(symbol, str) else json.dumps(symbol)
            for symbol in syms
        ]

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
