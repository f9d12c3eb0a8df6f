"""One account's authenticated WebSocket v2 connection: `executions` and `balances`.

Like the market feeder (apps/market/feeder/client.py) we speak the protocol with the
`websockets` library rather than python-kraken-sdk's SpotWSClient: money needs
`parse_float=Decimal` on the raw frame (the SDK decodes floats), and the connection must stop
the moment its account's key is revoked or the process loses its lease, which the SDK's own
reconnect loop does not allow.

Every (re)connection:
1. takes a token (GetWebSocketsToken with the account's designated read key). Kraken's token
   must be used within 15 minutes of its creation and then lasts as long as the subscription;
   the one in hand is reused for a reconnect while younger than STREAMS_TOKEN_MAX_AGE (10
   min), a fresh one is fetched in the background before that, so a reconnect does not wait
   for REST; a token Kraken refuses is dropped and a new one fetched;
2. subscribes `executions` (snap_orders, snap_trades) and `balances` (snapshot);
3. closes the gap the socket was down for. The gap starts, on Kraken's own clock, at the later
   of the newest record (a fill's or ledger entry's time) and the moment the previous
   subscription of the channel was accepted (StreamMark: everything after it was streamed
   until that socket went). On the executions snapshot: orders the record holds open that
   the snapshot no longer lists are read with QueryOrders (their final state), and when the
   snapshot's 50 fills are all new to the record, the fills between the gap's start and them
   come from TradesHistory. On the balances snapshot: the ledger entries between the gap's
   start and this subscription come from Ledgers (later ones stream, and move the balances
   when they do). All through the exchange's REST client, which waits for the key's budget.
   Then the subscription's StreamMark is written;
4. applies every update in the order Kraken sent it.
Each message is written in one transaction (records.py) and published after commit (live.py).
A connection that never streamed before (no record, no mark) starts from the snapshots.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import websockets
from django.conf import settings
from django.db import IntegrityError, close_old_connections
from redis.asyncio import Redis

from apps.exchange.streams import live, records
from apps.kraken.client import KrakenKey, kraken_private, websocket_token
from apps.kraken.errors import KrakenError, PermissionDeniedError
from apps.orgs.models import KrakenAccount
from apps.vault.services import KeyPurpose, credential_key_for_task

logger = logging.getLogger(__name__)

SNAPSHOT_FILLS = 50  # Kraken's `snap_trades` sends the last 50 fills
QUERY_ORDERS_BATCH = 50  # QueryOrders takes up to 50 txids
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
GAP_MARGIN = timedelta(seconds=2)  # look a little before: Kraken's times are rounded


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311


class TokenRefused(Exception):
    """Kraken refused the token on subscribe (expired, revoked key): fetch a new one."""


@dataclass
class StreamState:
    """What the process reports about one account's connection (status key, tests)."""

    state: str = "starting"  # starting | connecting | subscribed | backoff | stopped
    connected_at: float = 0.0
    subscribed_at: float = 0.0
    heard_at: float = 0.0
    reconnects: int = 0
    gap_fills: int = 0  # REST gap fills done (QueryOrders, TradesHistory, Ledgers calls)
    last_error: str = ""
    channels: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "connected_at": self.connected_at,
            "subscribed_at": self.subscribed_at,
            "heard_at": self.heard_at,
            "reconnects": self.reconnects,
            "gap_fills": self.gap_fills,
            "last_error": self.last_error,
        }


def orm_job[T](fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ORM work in a worker thread: drop connections that died or aged out first."""
    close_old_connections()
    return fn(*args, **kwargs)


class AccountStream:
    """The connection of one account, through one credential. Cancel the task to stop it."""

    def __init__(
        self,
        *,
        account_id: int,
        credential_id: int,
        ws_url: str,
        db: Executor,
        rest: Executor,
        redis: Redis[bytes] | None = None,
    ) -> None:
        self.account_id = account_id
        self.redis = redis
        self.credential_id = credential_id
        self.ws_url = ws_url
        self.db = db
        self.rest = rest
        self.status = StreamState()
        self.subscribed = asyncio.Event()
        self._key: KrakenKey | None = None
        self._token: str | None = None
        self._token_at = 0.0
        self._account: KrakenAccount | None = None
        self._renewing: asyncio.Task[None] | None = None
        # Kraken's clock when each channel's subscription of this connection was accepted.
        self._subscribed_at: dict[str, datetime] = {}

    # -- threads ------------------------------------------------------------------------------

    async def _db[T](self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db, partial(orm_job, fn, *args, **kwargs))

    async def _rest[T](self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.rest, partial(orm_job, fn, *args, **kwargs))

    def _open_key(self) -> KrakenKey:
        # Every opening checks the key again (state, owner's role): a revoked key stops here.
        return credential_key_for_task(credential_id=self.credential_id, purpose=KeyPurpose.READ)

    def _read(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self._key is None:
            self._key = self._open_key()
        self.status.gap_fills += 1
        return kraken_private(self._key, method, params or {})

    def _load_account(self) -> KrakenAccount:
        return KrakenAccount.objects.select_related("org").get(pk=self.account_id)

    # -- the token ----------------------------------------------------------------------------

    def _fetch_token(self) -> str:
        self._key = self._open_key()
        return websocket_token(self._key)

    async def _token_now(self) -> str:
        max_age = _setting("STREAMS_TOKEN_MAX_AGE", 600)
        if self._token is None or time.monotonic() - self._token_at > max_age:
            self._token = await self._rest(self._fetch_token)
            self._token_at = time.monotonic()
        return self._token

    async def _renew_token(self) -> None:
        """Fetch a fresh token in the background before the one in hand gets old, so a
        reconnect never waits for REST (Kraken: use a token within 15 minutes)."""
        renew = _setting("STREAMS_TOKEN_RENEW", 540)
        while True:
            await asyncio.sleep(max(1.0, renew - (time.monotonic() - self._token_at)))
            if time.monotonic() - self._token_at < renew:
                continue
            try:
                self._token = await self._rest(self._fetch_token)
                self._token_at = time.monotonic()
            except Exception as error:  # try again later; the connection in hand still works
                logger.warning(
                    "streams: token renewal for account %s failed: %s", self.account_id, error
                )
                await asyncio.sleep(30)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        self._renewing = asyncio.create_task(self._renew_token())
        try:
            while True:
                try:
                    await self._connect_once()
                    attempt = 0
                except asyncio.CancelledError:
                    raise
                except TokenRefused as error:
                    self._token = None  # the next attempt fetches a new one
                    self.status.last_error = str(error)[:200]
                except (OSError, TimeoutError, websockets.WebSocketException) as error:
                    self.status.last_error = f"{type(error).__name__}: {error}"[:200]
                    logger.warning(
                        "streams: account %s connection lost (%s); reconnecting",
                        self.account_id,
                        self.status.last_error,
                    )
                except KrakenError as error:
                    self.status.last_error = f"{type(error).__name__}: {error}"[:200]
                    logger.warning("streams: account %s: %s", self.account_id, error)
                except Exception as error:
                    self.status.last_error = f"{type(error).__name__}: {error}"[:200]
                    logger.exception("streams: account %s failed", self.account_id)
                self.subscribed.clear()
                self.status.state = "backoff"
                self.status.reconnects += 1
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1
        finally:
            self.status.state = "stopped"
            self.subscribed.clear()
            if self._renewing is not None:
                self._renewing.cancel()

    async def _connect_once(self) -> None:
        self.status.state = "connecting"
        if self._account is None:
            self._account = await self._db(self._load_account)
        token = await self._token_now()
        async with websockets.connect(
            self.ws_url, max_size=2**24, ping_interval=20, open_timeout=10, close_timeout=2
        ) as ws:
            self.status.connected_at = time.time()
            self.status.channels = set()
            await ws.send(
                json.dumps(
                    {
                        "method": "subscribe",
                        "params": {
                            "channel": "executions",
                            "token": token,
                            "snap_orders": True,
                            "snap_trades": True,
                        },
                        "req_id": 1,
                    }
                )
            )
            await ws.send(
                json.dumps(
                    {
                        "method": "subscribe",
                        "params": {"channel": "balances", "token": token, "snapshot": True},
                        "req_id": 2,
                    }
                )
            )
            async for raw in ws:
                self.status.heard_at = time.time()
                await self.handle(json.loads(raw, parse_float=Decimal))

    async def handle(self, message: Mapping[str, Any]) -> None:
        if message.get("method") == "subscribe":
            if message.get("success") is False:
                error = str(message.get("error") or "subscribe refused")
                if "token" in error.lower() or "EAPI" in error:
                    raise TokenRefused(error)
                raise websockets.WebSocketException(error)
            result = message.get("result") or {}
            at = records.when(message.get("time_in"))
            if isinstance(result, Mapping) and result.get("channel") and at is not None:
                self._subscribed_at[str(result["channel"])] = at
            return
        channel = message.get("channel")
        if channel not in ("executions", "balances"):
            return  # status, heartbeat, pong
        data = [entry for entry in message.get("data") or [] if isinstance(entry, Mapping)]
        snapshot = message.get("type") == "snapshot"
        if channel == "executions":
            # Where a gap would start: what the record knew before this snapshot.
            since, known = None, False
            if snapshot:
                since = await self._gap_start("executions", records.last_fill_at)
                snapshot_fills = [str(e.get("exec_id")) for e in data if e.get("exec_id")]
                known = bool(
                    await self._db(
                        records.known_fills, account_id=self.account_id, trade_ids=snapshot_fills
                    )
                )
            await self._apply(
                records.apply_executions,
                account_id=self.account_id,
                entries=data,
                snapshot=snapshot,
            )
            if snapshot:
                await self._fill_order_gap(data, None if known else since)
                await self._mark_live("executions")
        else:
            if snapshot:
                since = await self._gap_start("balances", records.last_ledger_at)
                await self._apply(
                    records.apply_balances_snapshot, account_id=self.account_id, data=data
                )
                await self._fill_ledger_gap(since, self._subscribed_at.get("balances"))
                await self._mark_live("balances")
            else:
                await self._apply(
                    records.apply_balance_updates, account_id=self.account_id, entries=data
                )
        if snapshot:
            self.status.channels.add(str(channel))
            if self.status.channels >= {"executions", "balances"}:
                self.status.state = "subscribed"
                self.status.subscribed_at = time.time()
                self.subscribed.set()

    async def _apply(self, fn: Callable[..., records.Applied], **kwargs: Any) -> records.Applied:
        account = self._account
        if account is None:  # _connect_once loads it before the first message
            account = self._account = await self._db(self._load_account)

        def write_and_publish() -> records.Applied:
            try:
                applied = fn(**kwargs)
            except IntegrityError:
                # The AddOrder answer recorded the same order at the same moment: once more.
                applied = fn(**kwargs)
            live.publish(account, applied)
            return applied

        return await self._db(write_and_publish)

    # -- gap fills ----------------------------------------------------------------------------

    async def _gap_start(
        self, channel: str, last_recorded: Callable[..., datetime | None]
    ) -> datetime | None:
        """Where the gap of `channel` starts, on Kraken's clock: the later of the newest
        record (a fill's or ledger entry's own time) and the moment an earlier subscription
        of this account's channel was accepted (everything since then was streamed until the
        socket went). None: this account was never streamed, the snapshot is the start."""
        last = await self._db(last_recorded, account_id=self.account_id)
        marked = await self._db(records.live_since, account_id=self.account_id, channel=channel)
        starts = [t for t in (last, marked) if t is not None]
        return max(starts) if starts else None

    async def _mark_live(self, channel: str) -> None:
        """Remember when this subscription was accepted (Kraken's clock), once its gap is
        closed: the next connection's gap starts there at the latest."""
        at = self._subscribed_at.get(channel)
        if at is not None:
            await self._db(
                records.live_since_set, account_id=self.account_id, channel=channel, at=at
            )

    async def _fill_order_gap(
        self, data: list[Mapping[str, Any]], last_fill: datetime | None
    ) -> None:
        open_ids = [
            str(entry["order_id"])
            for entry in data
            if entry.get("exec_type") != "trade" and entry.get("order_id")
        ]
        trades = [entry for entry in data if entry.get("exec_type") == "trade"]
        await self._fill_trade_gap(trades, last_fill)
        stale = await self._db(
            records.orders_to_settle, account_id=self.account_id, open_ids=open_ids
        )
        for start in range(0, len(stale), QUERY_ORDERS_BATCH):
            batch = stale[start : start + QUERY_ORDERS_BATCH]
            answer = await self._rest(self._read, "QueryOrders", {"txid": ",".join(batch)})
            await self._apply(records.apply_rest_orders, account_id=self.account_id, orders=answer)

    async def _fill_trade_gap(self, trades: list[Mapping[str, Any]], last: datetime | None) -> None:
        """When the snapshot is full (50 fills) and none of them was recorded before (`last`
        is None when one was, or when the account was never streamed), the fills between the
        gap's start and the snapshot come from TradesHistory."""
        if len(trades) < SNAPSHOT_FILLS:
            return  # the snapshot holds every fill the account ever had
        if last is None:
            return  # the snapshot reaches back to the record, or is where it starts
        start = (last - GAP_MARGIN).timestamp()
        offset = 0
        while True:
            answer = await self._rest(
                self._read, "TradesHistory", {"start": f"{start:.6f}", "ofs": offset}
            )
            page = answer.get("trades") or {}
            if not page:
                break
            await self._apply(records.apply_rest_trades, account_id=self.account_id, trades=page)
            offset += len(page)
            if offset >= int(answer.get("count") or 0):
                break

    async def _fill_ledger_gap(self, last: datetime | None, until: datetime | None) -> None:
        """Ledger entries booked while the socket was down, up to this subscription (later
        ones stream, and must move the balances when they do); best effort: a key without
        Query Ledger keeps the balances, which the snapshot has, and misses only entries."""
        if last is None:
            return
        params: dict[str, Any] = {"start": f"{(last - GAP_MARGIN).timestamp():.6f}"}
        if until is not None:
            params["end"] = f"{until.timestamp():.6f}"
        offset = 0
        try:
            while True:
                answer = await self._rest(self._read, "Ledgers", {**params, "ofs": offset})
                page = answer.get("ledger") or {}
                if not page:
                    break
                await self._apply(
                    records.apply_rest_ledgers, account_id=self.account_id, ledgers=page
                )
                offset += len(page)
                if offset >= int(answer.get("count") or 0):
                    break
        except PermissionDeniedError:
            logger.info("streams: account %s key cannot read the ledger", self.account_id)
