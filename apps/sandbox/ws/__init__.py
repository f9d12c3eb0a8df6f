"""WebSocket API v2: public market data and private executions/balances/trading.

Every connection has an outbound queue and a writer task, so broadcasting to many
subscribers is a cheap ``put_nowait`` of a pre-serialised frame and a slow client cannot
stall the engine.

The hub is built in layers, each a module: ``connection`` (sockets, frames, auth) →
``private_channels`` (executions, balances) → ``book`` → ``public_channels`` (subscribe,
ticker, trade, ohlc, instrument) → ``trading`` (add/amend/cancel requests) → ``WsHub``
(the connection handler and request dispatch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from apps.sandbox.engine import Engine
from apps.sandbox.errors import KrakenError
from apps.sandbox.util import rfc3339

from .connection import LOG, Conn, checksum
from .trading import TradingRequests

__all__ = ["WsHub", "checksum"]


class WsHub(TradingRequests):
    def __init__(self, engine: Engine, seed: int) -> None:
        super().__init__(engine, seed)
        engine.listeners.append(self.on_event)
        engine.exec_interest = lambda account_id: bool(self.exec_subs.get(account_id))
        engine.book_listeners.append(self.mark_dirty)

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
                self._trade_or_lose(conn, str(method), params, req_id, time_in)
            else:
                conn.send(self._ack(str(method), req_id, time_in, error="Method not found"))
        except KrakenError as err:
            if not conn.mute_acks:
                conn.send(self._ack(str(method), req_id, time_in, error=err.error))
        except Exception:  # a bug must not kill the socket or leak a traceback
            LOG.exception("ws request failed: %.200s", text)
            conn.send(self._ack(str(method), req_id, time_in, error="EGeneral:Internal error"))

    def _trade_or_lose(
        self, conn: Conn, method: str, params: dict[str, Any], req_id: Any, time_in: str
    ) -> None:
        """A trading request; under a ``lost_response`` fault it is applied and its answer
        lost (``mode: drop`` also cuts the socket, as a dropped connection would)."""
        lost = self.faults.lost_ws_answer(method) if self.faults and self.faults.rules else None
        if lost is None:
            self.trade(conn, method, params, req_id, time_in)
            return
        conn.mute_acks = True
        try:
            self.trade(conn, method, params, req_id, time_in)
        except KrakenError:
            pass  # the refusal is lost with the answer
        finally:
            conn.mute_acks = False
        if lost.mode == "drop":
            self.abort(conn)
