"""Sandbox control API (not Kraken's): JSON in/out, ``Authorization: Bearer <token>``."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import ALL_PERMISSIONS, PERMISSIONS
from .earn import DEFAULT_FAILURE, STRATEGIES, accrue, flex_strategy
from .engine.models import PAIR_STATUSES, SYSTEM_STATUSES
from .errors import KrakenError
from .funding import credit_deposit
from .funding_methods import METHODS
from .pairs import ASSETS, PAIRS, fmt, resolve_asset, resolve_pair
from .util import dumps, to_decimal

if TYPE_CHECKING:
    from .server import Sandbox

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


SERVICE_IDENTITY = "kraken-sandbox"


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ControlError("body must be JSON") from None
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def register(app: web.Application, sandbox: Sandbox) -> None:
    engine = sandbox.engine

    def guarded(fn: Callable[[web.Request], Awaitable[Any]]) -> RouteHandler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            token = sandbox.config.admin_token
            given = request.headers.get("Authorization", "")
            if not token or not hmac.compare_digest(given, f"Bearer {token}"):
                return _ok({"error": "unauthorized"}, 401)
            try:
                return _ok(await fn(request))
            except ControlError as err:
                return _ok({"error": str(err)}, err.status)
            except KrakenError as err:
                return _ok({"error": err.error}, 400)
            except (KeyError, ValueError, TypeError) as err:
                import traceback

                return _ok(
                    {"error": f"bad request: {err!r}", "traceback": traceback.format_exc()}, 400
                )
            except Exception as err:  # report, don't hide: this is a test tool
                import traceback

                return _ok(
                    {"error": f"internal: {err!r}", "traceback": traceback.format_exc()}, 500
                )

        return wrapper

    def account(request: web.Request) -> Any:
        acct = engine.accounts.get(request.match_info["id"])
        if acct is None:
            raise ControlError("unknown account", 404)
        return acct

    async def health(_request: web.Request) -> web.StreamResponse:
        return _ok(
            {
                # Who answers: the portal's demo_data refuses any Kraken URL whose health route
                # does not say this, so demo users never reach a real exchange.
                "service": SERVICE_IDENTITY,
                "status": "ok",
                "time": engine.now(),
                "seed": engine.seed,
                "exchange_status": engine.status,
                "pair_statuses": {
                    PAIRS[pid].symbol: mode
                    for pid, mode in engine.pair_status.items()
                    if mode != "online"
                },
                "legacy_f_balances": engine.legacy_f_balances,
                "accounts": len(engine.accounts),
            }
        )

    async def create_account(request: web.Request) -> Any:
        body = await _json(request)
        acct = engine.create_account(
            body.get("balances") or {}, body.get("tier"), account_id=body.get("id")
        )
        return {"account_id": acct.id, "iiban": acct.iiban, "tier": acct.tier}

    async def get_account(request: web.Request) -> Any:
        acct = account(request)
        return {
            "account_id": acct.id,
            "iiban": acct.iiban,
            "username": acct.username,
            "tier": acct.tier,
            "parent": acct.parent,
            "balances": {k: fmt(v, ASSETS[k].decimals) for k, v in acct.balances.items()},
            "holds": {k: fmt(v, ASSETS[k].decimals) for k, v in acct.holds.items()},
            "open_orders": list(acct.open_ids),
            "subaccounts": [a.id for a in engine.accounts.values() if a.parent == acct.id],
            "subaccount_details": [
                {"account_id": a.id, "iiban": a.iiban, "username": a.username}
                for a in engine.accounts.values()
                if a.parent == acct.id
            ],
        }

    async def create_key(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        perms = body.get("permissions", ALL_PERMISSIONS)
        if not isinstance(perms, list) or any(p not in PERMISSIONS for p in perms):
            raise ControlError(f"permissions must be a subset of {ALL_PERMISSIONS}")
        k = engine.create_key(
            acct.id,
            perms,
            int(body.get("nonce_window", 0)),
            body.get("otp"),
            body.get("key"),
            body.get("secret"),
            str(body.get("name") or ""),
        )
        return {
            "key": k.key,
            "secret": k.secret,
            "name": k.name,
            "permissions": sorted(k.permissions),
        }

    async def deposit(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        a = resolve_asset(str(body.get("asset", "")))
        amount = to_decimal(body.get("amount"))
        if a is None or amount is None or amount <= 0:
            raise ControlError("asset and positive amount required")
        refid = credit_deposit(engine, acct, a.id, amount, body.get("method"))
        return {"refid": refid, "balance": fmt(acct.balances[a.id], a.decimals)}

    async def withdraw_address(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        a = resolve_asset(str(body.get("asset", "")))
        if a is None:
            raise ControlError("unknown asset")
        methods = METHODS.get(a.id, [])
        method = body.get("method") or (methods[0].name if methods else "")
        if method not in {m.name for m in methods}:
            raise ControlError(f"method must be one of {[m.name for m in methods]}")
        entry = {
            "asset": a.id,
            "method": method,
            "key": str(body["key"]),
            "address": str(body["address"]),
            "verified": bool(body.get("verified", True)),
            # Kraken may hold a withdrawal for review (or a Kraken Organizations approval
            # queue): WithdrawStatus then shows status-prop "onhold". Withdrawals to this key
            # are held this many status steps after Initial (a key containing "hold": 2).
            "hold_steps": int(
                body.get("hold_steps", 2 if "hold" in str(body["key"]).lower() else 0)
            ),
        }
        acct.withdraw_addresses = [
            w
            for w in acct.withdraw_addresses
            if not (w["key"] == entry["key"] and w["asset"] == a.id)
        ]
        acct.withdraw_addresses.append(entry)
        return entry

    async def subaccount(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        if acct.parent is not None:
            raise ControlError("subaccounts hang off a master account")
        sub = engine.create_account(body.get("balances") or {}, parent=acct.id)
        sub.username = str(body.get("username") or sub.id)
        sub.email = str(body.get("email", ""))
        return {
            "account_id": sub.id,
            "iiban": sub.iiban,
            "username": sub.username,
            "parent": acct.id,
            "parent_iiban": acct.iiban,
        }

    async def auto_earn(request: web.Request) -> Any:
        """Move spot funds into auto-earn (``flex``) or back (negative amount), as Kraken's
        auto-earn does on its own; flex funds stay spendable."""
        acct = account(request)
        body = await _json(request)
        a = resolve_asset(str(body.get("asset", "")))
        amount = to_decimal(body.get("amount"))
        if a is None or amount is None or not amount:
            raise ControlError("asset and a non-zero amount required")
        strategy = flex_strategy(a.id)
        if strategy is None:
            raise ControlError(f"no auto-earn (flex) strategy for {a.altname}")
        flex = acct.auto_earn.get(a.id, Decimal(0))
        if (
            amount > 0
            and acct.balances.get(a.id, Decimal(0)) - acct.holds.get(a.id, Decimal(0)) < amount
        ):
            raise ControlError("not enough free spot funds")
        if amount < 0 and flex < -amount:
            raise ControlError("not that much in auto-earn")
        accrue(engine, acct, engine.now())
        refid = engine.ids.kid("E")
        acct.auto_earn[a.id] = flex + amount
        subtype = "autoallocation" if amount > 0 else "autodeallocation"
        engine.credit(acct, a.id, -amount, "earn", subtype, refid)
        engine.earn_wallet_entry(acct, a.id, amount, "flex", subtype, refid)
        return {
            "asset": a.altname,
            "strategy_id": strategy.id,
            "flex": fmt(acct.auto_earn[a.id], a.decimals),
            "spot": fmt(acct.balances.get(a.id, Decimal(0)), a.decimals),
        }

    async def earn_failure(request: web.Request) -> Any:
        """The next (de)allocation of this account on ``strategy_id`` fails in the background;
        the status call then answers ``error``."""
        acct = account(request)
        body = await _json(request)
        sid = str(body.get("strategy_id", ""))
        if sid not in STRATEGIES:
            raise ControlError("unknown strategy_id")
        acct.earn_fail_next[sid] = str(body.get("error") or DEFAULT_FAILURE)
        return {"strategy_id": sid, "error": acct.earn_fail_next[sid]}

    async def set_status(request: web.Request) -> Any:
        body = await _json(request)
        status = body.get("status")
        if status not in SYSTEM_STATUSES:
            raise ControlError(f"status must be one of {SYSTEM_STATUSES}")
        engine.status = status
        sandbox.hub.broadcast_status()
        return {"status": engine.status}

    async def set_faults(request: web.Request) -> Any:
        body = await _json(request)
        sandbox.faults.configure(body)
        return sandbox.faults.to_json()

    async def get_faults(_request: web.Request) -> Any:
        return sandbox.faults.to_json()

    async def move_price(request: web.Request) -> Any:
        pair = resolve_pair(request.match_info["pair"])
        if pair is None:
            raise ControlError("unknown pair", 404)
        body = await _json(request)
        price = to_decimal(body.get("price"))
        if price is None or price <= 0:
            raise ControlError("positive price required")
        engine.set_price(pair.id, price.quantize(pair.price_q))
        sandbox.hub.publish_market()
        sandbox.hub.flush()
        return {"pair": pair.id, "price": fmt(engine.markets[pair.id].mid, pair.pair_decimals)}

    async def pair_status(request: web.Request) -> Any:
        pair = resolve_pair(request.match_info["pair"])
        if pair is None:
            raise ControlError("unknown pair", 404)
        if request.method == "POST":
            body = await _json(request)
            mode = body.get("status")
            if mode not in PAIR_STATUSES:
                raise ControlError(f"status must be one of {PAIR_STATUSES}")
            if engine.pair_status[pair.id] != mode:
                engine.pair_status[pair.id] = mode
                sandbox.hub.publish_pair_status(pair)
        return {"pair": pair.id, "symbol": pair.symbol, "status": engine.pair_status[pair.id]}

    async def clock(request: web.Request) -> Any:
        body = await _json(request)
        if "speed" in body:
            speed = float(body["speed"])
            if not 0 < speed <= 10000:
                raise ControlError("speed must be in (0, 10000]")
            engine.clock.set_speed(speed)
        if "advance" in body:
            engine.clock.advance(float(body["advance"]))
        if body.get("tick", True):
            from .server import tick

            tick(sandbox)
        return {"now": engine.now(), "speed": engine.clock.speed, "offset": engine.clock.offset}

    async def config(request: web.Request) -> Any:
        body = await _json(request)
        for name in ("withdraw_step", "earn_delay", "tick_ms"):
            if name in body:
                setattr(sandbox.config, name, type(getattr(sandbox.config, name))(body[name]))
        if "flow_rate" in body:
            engine.flow_rate = float(body["flow_rate"])
        if "rate_limits" in body:
            engine.rate_limits = bool(body["rate_limits"])
        if "strict_validate_trap" in body:
            engine.strict_validate_trap = bool(body["strict_validate_trap"])
        if "legacy_f_balances" in body:
            engine.legacy_f_balances = bool(body["legacy_f_balances"])
        return {
            "withdraw_step": sandbox.config.withdraw_step,
            "earn_delay": sandbox.config.earn_delay,
            "flow_rate": engine.flow_rate,
            "strict_validate_trap": engine.strict_validate_trap,
            "rate_limits": engine.rate_limits,
            "legacy_f_balances": engine.legacy_f_balances,
        }

    async def save(_request: web.Request) -> Any:
        sandbox.save()
        return {"saved": bool(sandbox.config.state_file)}

    async def limits(request: web.Request) -> Any:
        key = request.query.get("key", "")
        k = engine.auth.keys.get(key)
        if k is None:
            raise ControlError("unknown key", 404)
        acct = engine.accounts[k.account_id]
        tier = engine.tier_of(acct)
        now = engine.now()
        return {
            "api_counter": str(engine.rest_limiter.value(key, tier, now)),
            "api_max": str(tier.api_max),
            "trading": {
                pid: str(engine.trade_limiter.value(acct.id, pid, tier, now))
                for (aid, pid) in engine.trade_limiter.counters
                if aid == acct.id
            },
            "calls": dict(sorted(k.calls.items())),
        }

    router = app.router
    router.add_get("/sandbox/health", health)
    router.add_post("/sandbox/accounts", guarded(create_account))
    router.add_get("/sandbox/accounts/{id}", guarded(get_account))
    router.add_post("/sandbox/accounts/{id}/keys", guarded(create_key))
    router.add_post("/sandbox/accounts/{id}/deposits", guarded(deposit))
    router.add_post("/sandbox/accounts/{id}/withdraw-addresses", guarded(withdraw_address))
    router.add_post("/sandbox/accounts/{id}/subaccounts", guarded(subaccount))
    router.add_post("/sandbox/accounts/{id}/auto-earn", guarded(auto_earn))
    router.add_post("/sandbox/accounts/{id}/earn-failures", guarded(earn_failure))
    router.add_post("/sandbox/status", guarded(set_status))
    router.add_post("/sandbox/faults", guarded(set_faults))
    router.add_get("/sandbox/faults", guarded(get_faults))
    router.add_post("/sandbox/markets/{pair}/price", guarded(move_price))
    router.add_post("/sandbox/markets/{pair}/status", guarded(pair_status))
    router.add_get("/sandbox/markets/{pair}/status", guarded(pair_status))
    router.add_post("/sandbox/clock", guarded(clock))
    router.add_post("/sandbox/config", guarded(config))
    router.add_post("/sandbox/save", guarded(save))
    router.add_get("/sandbox/limits", guarded(limits))
