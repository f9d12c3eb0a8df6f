"""The market-data feeder: Kraken WS v2 -> Decimal state -> coalesced, pre-rendered fragments.

We use the `websockets` library directly rather than python-kraken-sdk's SpotWSClient: the SDK
decodes JSON numbers as floats (checksums and money need `parse_float=Decimal` on the raw frame),
and it runs its own reconnect loop, whereas ours must stop the instant the Redis lease is lost
and must resubscribe a single symbol's book when its checksum fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import websockets
from redis.asyncio import Redis

from apps.market.feeder.book import ChecksumMismatch
from apps.market.feeder.lease import Lease
from apps.market.feeder.publisher import Publisher
from apps.market.feeder.state import BOOK_DEPTH, SymbolState, candle_from_row
from apps.market.store import FEEDER_KEY, LEASE_KEY, PAIRS_KEY, candles_key, dumps

logger = logging.getLogger(__name__)

# The chart's longer intervals (minutes): history from REST OHLC, refreshed every
# HISTORY_REFRESH seconds. Recent buckets come from the live one-minute candles instead, so
# this history only has to reach back further than those twelve hours.
HISTORY_INTERVALS = (5, 15, 60, 240, 1440)
HISTORY_REFRESH = 900.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# Kraken's v1/REST names some assets differently from WS v2 (`XBT/USD` is `BTC/USD` in v2).
_V2_ASSET = {"XBT": "BTC", "XDG": "DOGE"}


@dataclass(frozen=True)
class PairInfo:
    symbol: str  # WS v2 symbol, BTC/USD
    rest_name: str  # REST altname, XBTUSD
    price_decimals: int
    qty_decimals: int
    # The assets' names (WS v2) and decimals, for formatting (apps.core.amounts.PairDecimals).
    assets: tuple[tuple[str, Any], ...] = ()

    def described(self) -> dict[str, Any]:
        """The stored description of the pair (PAIRS_KEY, and each state's head)."""
        return {
            "symbol": self.symbol,
            "price_decimals": self.price_decimals,
            "qty_decimals": self.qty_decimals,
            **dict(self.assets),
        }


def v2_symbol(wsname: str) -> str:
    base, _, quote = wsname.partition("/")
    return f"{_V2_ASSET.get(base, base)}/{_V2_ASSET.get(quote, quote)}"


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311


class Feeder:
    def __init__(
        self,
        *,
        ws_url: str,
        api_url: str,
        redis: Redis[bytes],
        layer: Any,
        pairs: list[str] | None = None,
        interval: float = 0.25,
        lease_ttl: float = 3.0,
        lease_poll: float = 0.5,
    ) -> None:
        self.ws_url = ws_url
        self.api_url = api_url.rstrip("/")
        self.redis = redis
        self.wanted = pairs
        self.lease = Lease(redis, LEASE_KEY, ttl=lease_ttl, poll=lease_poll)
        self.states: dict[str, SymbolState] = {}
        self.publisher = Publisher(redis=redis, layer=layer, states=self.states, interval=interval)
        self.state = "standby"
        # When anything last arrived from Kraken (data or its once-a-second heartbeat).
        self.heard_at = 0.0
        self.reconnects = 0
        self.resyncs = 0
        self.subscribed = asyncio.Event()  # set once the current connection has subscribed
        # When the current socket opened (0 while there is none): statuses and prices received
        # on it are confirmed by every later word from Kraken, which would have pushed a change.
        self.connected_at = 0.0
        self.exchange = ExchangeStatuses()
        self.pairs: list[PairInfo] = []  # as last discovered
        self._ws: Any = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        status = asyncio.create_task(self._report_status())
        try:
            while True:
                self.state = "standby"
                await self.lease.acquire()
                logger.info("market feeder %s holds the lease", self.lease.owner[:8])
                self.state = "active"
                keeper = asyncio.create_task(self.lease.keep())
                feeding = asyncio.create_task(self.feed())
                history = asyncio.create_task(self._refresh_history())
                try:
                    await asyncio.wait({keeper, feeding}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (keeper, feeding, history):
                        task.cancel()
                    await asyncio.gather(keeper, feeding, return_exceptions=True)
                logger.warning("market feeder lost its lease; standing by")
        finally:
            status.cancel()
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _report_status(self) -> None:
        while True:
            try:
                await self._report_once()
            except Exception:  # Redis away: pages turn stale, which is the truth; try again
                logger.warning("market feeder status not recorded", exc_info=True)
            await asyncio.sleep(1)

    async def _report_once(self) -> None:
        """The status page's record, and (when active) the pulse every live page listens to."""
        own = FEEDER_KEY + ":" + self.lease.owner
        await self.redis.hset(own, mapping={"state": self.state, "updated_at": repr(time.time())})
        await self.redis.expire(own, 10)
        if self.state == "standby":
            return
        down = self.rebuilding()
        await self.redis.hset(
            FEEDER_KEY,
            mapping={
                "owner": self.lease.owner,
                "state": self.state,
                "updated_at": repr(time.time()),
                "heard_at": repr(self.heard_at),
                "connected_at": repr(self.connected_at),
                "down": " ".join(down),
                "reconnects": str(self.reconnects),
                "resyncs": str(self.resyncs),
            },
        )
        await self.publisher.heartbeat(heard_at=self.heard_at, down=down)

    def rebuilding(self) -> list[str]:
        """Pairs whose book is not usable now (waiting for a snapshot after a resubscribe)."""
        return [st.symbol for st in self.states.values() if not st.book.ready]

    # -- reference data ----------------------------------------------------------------------

    async def _assets(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Kraken's Assets (decimals, display decimals) by REST id; empty if unavailable, in
        which case amounts fall back to the pair's own decimals."""
        try:
            async with http.get(f"{self.api_url}/0/public/Assets") as response:
                body = json.loads(await response.text(), parse_float=Decimal)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        result: dict[str, Any] = body.get("result") or {}
        return result

    async def discover(self, http: aiohttp.ClientSession) -> list[PairInfo]:
        async with http.get(f"{self.api_url}/0/public/AssetPairs") as response:
            body = json.loads(await response.text(), parse_float=Decimal)
        assets = await self._assets(http)
        pairs = [
            PairInfo(
                symbol=v2_symbol(info["wsname"]),
                rest_name=info.get("altname", key),
                price_decimals=int(info["pair_decimals"]),
                qty_decimals=int(info["lot_decimals"]),
                assets=_asset_decimals(v2_symbol(info["wsname"]), info, assets),
            )
            for key, info in sorted(body.get("result", {}).items())
            if info.get("wsname")
        ]
        if self.wanted:
            # Configured pairs keep the configured order (it is the overview's order).
            by_symbol = {p.symbol: p for p in pairs}
            wanted = [s.strip().upper() for s in self.wanted]
            pairs = [by_symbol[s] for s in wanted if s in by_symbol]
        return pairs

    async def backfill(self, http: aiohttp.ClientSession, pair: PairInfo) -> None:
        """One-minute history for the chart from public REST OHLC (best effort)."""
        url = f"{self.api_url}/0/public/OHLC"
        try:
            async with http.get(url, params={"pair": pair.rest_name, "interval": "1"}) as response:
                body = json.loads(await response.text(), parse_float=Decimal)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return
        rows: list[list[Any]] = next(
            (v for k, v in body.get("result", {}).items() if k != "last"), []
        )
        self.states[pair.symbol].seed_candles(rows)

    async def _ohlc(
        self, http: aiohttp.ClientSession, pair: PairInfo, interval: int
    ) -> list[list[Any]]:
        url = f"{self.api_url}/0/public/OHLC"
        params = {"pair": pair.rest_name, "interval": str(interval)}
        async with http.get(url, params=params) as response:
            body = json.loads(await response.text(), parse_float=Decimal)
        rows: list[list[Any]] = next(
            (v for k, v in body.get("result", {}).items() if k != "last"), []
        )
        return rows

    async def _refresh_history(self) -> None:
        """The longer intervals' candles, once the pairs are known and then every so often."""
        while not self.pairs:
            await asyncio.sleep(0.5)
        while True:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                for pair in list(self.pairs):
                    for interval in HISTORY_INTERVALS:
                        try:
                            rows = await self._ohlc(http, pair, interval)
                        except (aiohttp.ClientError, TimeoutError, ValueError):
                            continue  # best effort: the chart still has the recent buckets
                        candles = [candle_from_row(row) for row in rows]
                        await self.redis.set(candles_key(pair.symbol, interval), dumps(candles))
            await asyncio.sleep(HISTORY_REFRESH)

    async def prepare(self) -> list[PairInfo]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            pairs = await self.discover(http)
            for pair in pairs:
                if pair.symbol not in self.states:
                    self.states[pair.symbol] = SymbolState(
                        pair.symbol,
                        price_decimals=pair.price_decimals,
                        qty_decimals=pair.qty_decimals,
                        described=pair.described(),
                    )
            await asyncio.gather(*(self.backfill(http, p) for p in pairs))
        await self.redis.set(PAIRS_KEY, dumps([p.described() for p in pairs]))
        self.pairs = pairs
        return pairs

    # -- the socket --------------------------------------------------------------------------

    async def feed(self) -> None:
        """Connect, subscribe and consume until cancelled, reconnecting with jittered backoff."""
        attempt = 0
        while True:
            try:
                pairs = await self.prepare()
                async with websockets.connect(
                    # close_timeout: on shutdown don't wait long for the exchange's goodbye.
                    self.ws_url,
                    max_size=2**24,
                    ping_interval=20,
                    open_timeout=10,
                    close_timeout=2,
                ) as ws:
                    self._ws = ws
                    self.state = "connected"
                    self.connected_at = time.time()
                    await self._subscribe(ws, [p.symbol for p in pairs])
                    attempt = 0
                    async for raw in ws:
                        await self.handle(raw, time.time())
            except asyncio.CancelledError:
                raise
            except (
                OSError,
                TimeoutError,
                aiohttp.ClientError,
                websockets.WebSocketException,
            ) as exc:
                # Expected while the exchange restarts or the network blips: one line, no
                # traceback, and the loop below retries with backoff.
                logger.warning("market feed connection lost (%s); retrying", _describe(exc))
            except Exception:
                logger.exception("market feed failed")
            self._ws = None
            self.connected_at = 0.0
            self.subscribed.clear()
            self.state = "reconnecting"
            self.reconnects += 1
            for st in self.states.values():
                st.book.ready = False
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1

    async def _subscribe(self, ws: Any, symbols: list[str]) -> None:
        # Each pair's trading status (limit_only, reduce_only, ...) comes only on `instrument`
        # (a snapshot of every pair, then an update when one changes); the system status needs
        # no subscription: Kraken pushes it on connect and on every change.
        await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "instrument"}}))
        if not symbols:
            self.subscribed.set()
            return
        for params in (
            # "bbo": a ticker on every change of the best bid or offer, not only on trades (the
            # default), so a tile's bid/ask are current between trades.
            {"channel": "ticker", "symbol": symbols, "event_trigger": "bbo"},
            {"channel": "book", "symbol": symbols, "depth": BOOK_DEPTH},
            {"channel": "trade", "symbol": symbols, "snapshot": True},
            {"channel": "ohlc", "symbol": symbols, "interval": 1},
        ):
            await ws.send(json.dumps({"method": "subscribe", "params": params}))
        self.subscribed.set()

    async def resubscribe_book(self, symbol: str) -> None:
        """Drop a drifted book and ask for a fresh snapshot of that symbol alone."""
        self.resyncs += 1
        ws = self._ws
        if ws is None:
            return
        params = {"channel": "book", "symbol": [symbol], "depth": BOOK_DEPTH}
        await ws.send(json.dumps({"method": "unsubscribe", "params": params}))
        await ws.send(json.dumps({"method": "subscribe", "params": params}))

    async def handle(self, raw: str | bytes, received_at: float) -> None:
        self.heard_at = received_at
        message = json.loads(raw, parse_float=Decimal)
        channel = message.get("channel")
        if channel == "status":
            await self._handle_system(message, received_at)
            return
        if channel == "instrument":
            await self._handle_instrument(message, received_at)
            return
        if channel not in {"ticker", "book", "trade", "ohlc"}:
            if message.get("success") is False:
                logger.warning("market feed request refused: %s", message.get("error"))
            return
        snapshot = message.get("type") == "snapshot"
        for entry in message.get("data", ()):
            st = self.states.get(entry.get("symbol", ""))
            if st is None:
                continue
            if channel == "book":
                if not snapshot and not st.book.ready:
                    continue  # waiting for the snapshot of a resubscribe
                try:
                    st.book.apply(entry, snapshot=snapshot)
                except ChecksumMismatch as mismatch:
                    logger.warning("market book dropped: %s", mismatch)
                    await self.resubscribe_book(st.symbol)
                st.touch(("ladder",), received_at)
            elif channel == "ticker":
                st.apply_ticker(entry, received_at)
            elif channel == "trade":
                st.apply_trade(entry, received_at)
            else:
                st.apply_ohlc(entry, received_at)
            self.publisher.changed(st.symbol, overview="tile" in st.dirty)

    async def _handle_system(self, message: dict[str, Any], received_at: float) -> None:
        for entry in message.get("data", ()):
            status = entry.get("system")
            if not isinstance(status, str):
                continue
            changed = self.exchange.set_system(status, received_at)
            # Stored on every status frame (its receive time confirms it); sent to pages only
            # when it changed.
            await self.publisher.system_status(
                status=status, since=self.exchange.system_since, received_at=received_at
            )
            if changed:
                logger.info("Kraken system status: %s", status)
                await self.publisher.system_status_changed(status=status)

    async def _handle_instrument(self, message: dict[str, Any], received_at: float) -> None:
        data = message.get("data")
        pairs = data.get("pairs", ()) if isinstance(data, dict) else ()
        statuses = {
            str(p["symbol"]): str(p["status"])
            for p in pairs
            if isinstance(p, dict) and p.get("symbol") and p.get("status")
        }
        if not statuses:
            return
        changed = self.exchange.set_pairs(statuses, received_at)
        await self.publisher.pair_statuses(
            statuses=statuses, since=self.exchange.pair_since, received_at=received_at
        )
        for symbol in changed:
            st = self.states.get(symbol)
            if st is None:
                continue
            st.set_status(statuses[symbol], received_at)
            # The first snapshot comes before any price: the status then rides with the pair's
            # first ticker rather than storing a state without prices for pages to show.
            if st.ticker:
                self.publisher.changed(symbol, overview=True)


class ExchangeStatuses:
    """The feeder's memory of Kraken's statuses, to tell a change from a repeat."""

    def __init__(self) -> None:
        self.system: str | None = None
        self.system_since = 0.0
        self.pairs: dict[str, str] = {}
        self.pair_since: dict[str, float] = {}

    def set_system(self, status: str, at: float) -> bool:
        if status == self.system:
            return False
        self.system, self.system_since = status, at
        return True

    def set_pairs(self, statuses: dict[str, str], at: float) -> list[str]:
        changed = [s for s, status in statuses.items() if self.pairs.get(s) != status]
        for symbol in changed:
            self.pairs[symbol] = statuses[symbol]
            self.pair_since[symbol] = at
        return changed


def _asset_decimals(
    symbol: str, info: dict[str, Any], assets: dict[str, Any]
) -> tuple[tuple[str, Any], ...]:
    """The base and quote assets' names and decimals, as PairDecimals reads them."""
    base, _, quote = symbol.partition("/")
    found: dict[str, Any] = {"base": base, "quote": quote}
    for side in ("base", "quote"):
        asset = assets.get(info.get(side, ""))
        if asset:
            found[f"{side}_decimals"] = int(asset["decimals"])
            found[f"{side}_display_decimals"] = int(asset["display_decimals"])
    return tuple(found.items())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
