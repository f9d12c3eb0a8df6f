"""aiohttp application: Kraken REST + WS v2 + the sandbox control API on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import control, earn, funding, state
from .auth import AuthError
from .engine import Engine
from .errors import KrakenError
from .faults import Faults, html_5xx
from .params import is_json, merge_query, parse_body
from .private import PRIVATE, Ctx
from .private import Handler as PrivateHandler
from .public import PUBLIC
from .util import dumps
from .ws import WsHub

LOG = logging.getLogger("apps.sandbox")
JSON = "application/json"


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 1
    tier: str = "intermediate"
    state_file: str | None = None
    faults: str = "none"
    admin_token: str = ""
    tick_ms: int = 250
    clock_speed: float = 1.0
    withdraw_step: float = 5.0
    earn_delay: float = 5.0
    save_every: float = 30.0
    # Balance/BalanceEx in the pre-13-Nov-2025 shape (Earn funds as ".F" assets).
    legacy_f_balances: bool = False


@dataclass
class Sandbox:
    config: Config
    engine: Engine
    faults: Faults
    hub: WsHub
    handlers: dict[str, PrivateHandler] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def save(self) -> None:
        if self.config.state_file:
            state.save(self.engine, self.config.state_file)


def build(config: Config) -> tuple[web.Application, Sandbox]:
    from .clock import Clock

    clock = Clock(config.clock_speed)
    engine = Engine(seed=config.seed, tier=config.tier, clock=clock)
    engine.legacy_f_balances = config.legacy_f_balances
    if config.state_file:
        state.load(engine, config.state_file)
    faults = Faults(config.seed)
    faults.configure({"profile": config.faults})
    hub = WsHub(engine, config.seed)
    hub.faults = faults
    sandbox = Sandbox(config=config, engine=engine, faults=faults, hub=hub)
    sandbox.handlers = {
        **PRIVATE,
        **funding.FUNDING,
        **earn.earn_handlers(lambda: sandbox.config.earn_delay),
    }
    app = web.Application(client_max_size=1 << 20)
    app["sandbox"] = sandbox

    async def public(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        return await _dispatch(sandbox, request, method, private=False)

    async def private(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        return await _dispatch(sandbox, request, method, private=True)

    async def ws_public(request: web.Request) -> web.StreamResponse:
        return await hub.handle(request, private=False)

    async def ws_private(request: web.Request) -> web.StreamResponse:
        return await hub.handle(request, private=True)

    app.router.add_route("GET", "/0/public/{method}", public)
    app.router.add_route("POST", "/0/public/{method}", public)
    app.router.add_route("POST", "/0/private/{method:.+}", private)
    app.router.add_route("GET", "/0/private/{method:.+}", private)
    # python-kraken-sdk appends "/v2" to ws_url/auth_ws_url: ws_url=".../ws" and
    # auth_ws_url=".../ws-auth" give the first two paths. Kraken separates public and
    # private by host; one local host cannot, so a client given the bare base for both
    # lands on "/v2", which therefore serves both (private channels still need a token).
    app.router.add_get("/ws/v2", ws_public)
    app.router.add_get("/ws-auth/v2", ws_private)
    app.router.add_get("/v2", ws_private)
    control.register(app, sandbox)
    app.on_startup.append(lambda _app: _start(sandbox))
    app.on_cleanup.append(lambda _app: _stop(sandbox))
    return app, sandbox


def _reply(result: Any = None, error: str | None = None) -> web.Response:
    body = dumps({"error": [error]}) if error else dumps({"error": [], "result": result})
    return web.Response(text=body, content_type=JSON)


async def _dispatch(
    sandbox: Sandbox,
    request: web.Request,
    method: str,
    *,
    private: bool,
) -> web.StreamResponse:
    rules = sandbox.faults.pick(method, private) if sandbox.faults.rules else []
    lost = None
    for rule in rules:
        if rule.kind == "latency" and rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        elif rule.kind == "http_5xx":
            return web.Response(
                status=rule.status, text=html_5xx(rule.status), content_type="text/html"
            )
        elif rule.kind == "unavailable":
            return _reply(error="EService:Unavailable")
        elif rule.kind == "busy":
            return _reply(error="EService:Busy")
        elif rule.kind == "lost_response":
            lost = rule
    try:
        body = await request.read()
    except (ConnectionError, asyncio.CancelledError):
        raise
    content_type = request.headers.get("Content-Type", "")
    response = _handle(sandbox, request, method, body, content_type, private=private)
    if lost is not None:
        # The request WAS applied; the client just never learns the outcome.
        if lost.mode == "5xx":
            return web.Response(
                status=lost.status, text=html_5xx(lost.status), content_type="text/html"
            )
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=502)  # never reaches the client: the socket is gone
    return response


def _handle(
    sandbox: Sandbox,
    request: web.Request,
    method: str,
    body: bytes,
    content_type: str,
    *,
    private: bool,
) -> web.Response:
    engine = sandbox.engine
    try:
        if not private:
            handler = PUBLIC.get(method)
            if handler is None:
                return _reply(error="EGeneral:Unknown method")
            params = parse_body(body, content_type) if request.method == "POST" else {}
            merge_query(params, dict(request.query))
            return _reply(handler(engine, params))
        if request.method != "POST":
            return _reply(error="EGeneral:Invalid arguments")
        handler_p = sandbox.handlers.get(method)
        if handler_p is None:
            return _reply(error="EGeneral:Unknown method")
        params = parse_body(body, content_type)
        is_form = not is_json(body, content_type)
        if engine.status == "maintenance" and method not in ("Balance", "BalanceEx"):
            return _reply(error="EService:Unavailable")
        now = engine.now()
        peer = request.remote or "?"
        try:
            key = engine.auth.verify(
                path=f"/0/private/{method}",
                body=body,
                api_key=request.headers.get("API-Key"),
                api_sign=request.headers.get("API-Sign"),
                nonce_raw=params.get("nonce"),
                otp=params.get("otp"),
                method=method,
                ip=peer,
                now=now,
            )
        except AuthError as err:
            return _reply(error=err.error)
        acct = engine.accounts[key.account_id]
        key.calls[method] = key.calls.get(method, 0) + 1
        if engine.rate_limits and not engine.rest_limiter.charge(
            key.key, method, engine.tier_of(acct), now
        ):
            return _reply(error="EAPI:Rate limit exceeded")
        return _reply(handler_p(Ctx(engine, acct, key, params, is_form)))
    except KrakenError as err:
        return _reply(error=err.error)
    except Exception:  # a bug must still look like Kraken, never a traceback
        LOG.exception("internal error in %s", method)
        return _reply(error="EGeneral:Internal error")


# ---------------------------------------------------------------------- background
async def _loop(interval: float, fn: Callable[[], Awaitable[None] | None]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            res = fn()
            if asyncio.iscoroutine(res):
                await res
        except Exception:
            LOG.exception("background task failed")


def tick(sandbox: Sandbox) -> None:
    """One simulation step: market, timers, funding/earn progress, WS fan-out."""
    sandbox.engine.tick()
    funding.advance_withdrawals(sandbox.engine, sandbox.config.withdraw_step)
    earn.settle(sandbox.engine)
    sandbox.hub.publish_market()
    for pid in list(sandbox.engine.markets):
        sandbox.hub.mark_dirty(pid)
    sandbox.hub.flush()


async def _start(sandbox: Sandbox) -> None:
    sandbox.tasks.append(
        asyncio.create_task(_loop(sandbox.config.tick_ms / 1000, lambda: tick(sandbox)))
    )
    sandbox.tasks.append(asyncio.create_task(_loop(1.0, sandbox.hub.heartbeat)))
    if sandbox.config.state_file:
        sandbox.tasks.append(asyncio.create_task(_loop(sandbox.config.save_every, sandbox.save)))

    async def ws_chaos() -> None:
        while True:
            every = sandbox.faults.ws_disconnect_every
            await asyncio.sleep(every if every > 0 else 1.0)
            if sandbox.faults.ws_disconnect_every > 0:
                await sandbox.hub.disconnect_all()

    sandbox.tasks.append(asyncio.create_task(ws_chaos()))


async def _stop(sandbox: Sandbox) -> None:
    for t in sandbox.tasks:
        t.cancel()
    for t in sandbox.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    sandbox.save()


def run(config: Config) -> None:
    """Blocking entry point used by ``python -m apps.sandbox`` and the Django command."""
    logging.basicConfig(level=os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"))
    app, _sb = build(config)

    async def main() -> None:
        # Open WebSockets (the portal's feeder) would hold a shutdown for aiohttp's default
        # 60 s, longer than a supervisor waits before SIGKILL; 2 s is plenty to say goodbye.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        print(f"sandbox listening on http://{config.host}:{config.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _sb.save()  # Keep the state even if the supervisor kills us during cleanup.
        await runner.cleanup()

    asyncio.run(main(), loop_factory=_loop_factory())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when present (it is in the lock via uvicorn[standard]): roughly doubles
    request throughput; the stdlib loop otherwise. ``SANDBOX_UVLOOP=0`` opts out."""
    if os.environ.get("SANDBOX_UVLOOP", "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
