"""Sandbox control API (not Kraken's): JSON in/out, ``Authorization: Bearer <token>``."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import ALL_PERMISSIONS, PERMISSIONS
from .errors import KrakenError
from .funding import METHODS, credit_deposit
from .pairs import ASSETS, fmt, resolve_asset, resolve_pair
from .util import dumps, to_decimal

if TYPE_CHECKING:
    from .server import Sandbox

STATUSES = ("online", "maintenance", "cancel_only", "post_only")
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


def register(app: web.Application, sb: Sandbox) -> None:
    e = sb.engine

    def guarded(fn: Callable[[web.Request], Awaitable[Any]]) -> RouteHandler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            token = sb.config.admin_token
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
        acct = e.accounts.get(request.match_info["id"])
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
                "time": e.now(),
                "seed": e.seed,
                "exchange_status": e.status,
                "accounts": len(e.accounts),
            }
        )

    async def create_account(request: web.Request) -> Any:
        body = await _json(request)
        acct = e.create_account(
            body.get("balances") or {}, body.get("tier"), account_id=body.get("id")
        )
        return {"account_id": acct.id, "tier": acct.tier}

    async def get_account(request: web.Request) -> Any:
        acct = account(request)
        return {
            "account_id": acct.id,
            "tier": acct.tier,
            "parent": acct.parent,
            "balances": {k: fmt(v, ASSETS[k].decimals) for k, v in acct.balances.items()},
            "holds": {k: fmt(v, ASSETS[k].decimals) for k, v in acct.holds.items()},
            "open_orders": list(acct.open_ids),
            "subaccounts": [a.id for a in e.accounts.values() if a.parent == acct.id],
        }

    async def create_key(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        perms = body.get("permissions", ALL_PERMISSIONS)
        if not isinstance(perms, list) or any(p not in PERMISSIONS for p in perms):
            raise ControlError(f"permissions must be a subset of {ALL_PERMISSIONS}")
        k = e.create_key(
            acct.id,
            perms,
            int(body.get("nonce_window", 0)),
            body.get("otp"),
            body.get("key"),
            body.get("secret"),
        )
        return {"key": k.key, "secret": k.secret, "permissions": sorted(k.permissions)}

    async def deposit(request: web.Request) -> Any:
        acct = account(request)
        body = await _json(request)
        a = resolve_asset(str(body.get("asset", "")))
        amount = to_decimal(body.get("amount"))
        if a is None or amount is None or amount <= 0:
            raise ControlError("asset and positive amount required")
        refid = credit_deposit(e, acct, a.id, amount, body.get("method"))
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
        sub = e.create_account(body.get("balances") or {}, parent=acct.id)
        sub.username = str(body.get("username", sub.id))
        sub.email = str(body.get("email", ""))
        return {"account_id": sub.id, "parent": acct.id}

    async def set_status(request: web.Request) -> Any:
        body = await _json(request)
        status = body.get("status")
        if status not in STATUSES:
            raise ControlError(f"status must be one of {STATUSES}")
        e.status = status
        sb.hub.broadcast_status()
        return {"status": e.status}

    async def set_faults(request: web.Request) -> Any:
        body = await _json(request)
        sb.faults.configure(body)
        return sb.faults.to_json()

    async def get_faults(_request: web.Request) -> Any:
        return sb.faults.to_json()

    async def move_price(request: web.Request) -> Any:
        pair = resolve_pair(request.match_info["pair"])
        if pair is None:
            raise ControlError("unknown pair", 404)
        body = await _json(request)
        price = to_decimal(body.get("price"))
        if price is None or price <= 0:
            raise ControlError("positive price required")
        e.set_price(pair.id, price.quantize(pair.price_q))
        sb.hub.publish_market()
        sb.hub.flush()
        return {"pair": pair.id, "price": fmt(e.markets[pair.id].mid, pair.pair_decimals)}

    async def clock(request: web.Request) -> Any:
        body = await _json(request)
        if "speed" in body:
            speed = float(body["speed"])
            if not 0 < speed <= 10000:
                raise ControlError("speed must be in (0, 10000]")
            e.clock.set_speed(speed)
        if "advance" in body:
            e.clock.advance(float(body["advance"]))
        if body.get("tick", True):
            from .server import tick

            tick(sb)
        return {"now": e.now(), "speed": e.clock.speed, "offset": e.clock.offset}

    async def config(request: web.Request) -> Any:
        body = await _json(request)
        for name in ("withdraw_step", "earn_delay", "tick_ms"):
            if name in body:
                setattr(sb.config, name, type(getattr(sb.config, name))(body[name]))
        if "flow_rate" in body:
            e.flow_rate = float(body["flow_rate"])
        if "rate_limits" in body:
            e.rate_limits = bool(body["rate_limits"])
        if "strict_validate_trap" in body:
            e.strict_validate_trap = bool(body["strict_validate_trap"])
        return {
            "withdraw_step": sb.config.withdraw_step,
            "earn_delay": sb.config.earn_delay,
            "flow_rate": e.flow_rate,
            "strict_validate_trap": e.strict_validate_trap,
            "rate_limits": e.rate_limits,
        }

    async def save(_request: web.Request) -> Any:
        sb.save()
        return {"saved": bool(sb.config.state_file)}

    async def limits(request: web.Request) -> Any:
        key = request.query.get("key", "")
        k = e.auth.keys.get(key)
        if k is None:
            raise ControlError("unknown key", 404)
        acct = e.accounts[k.account_id]
        tier = e.tier_of(acct)
        now = e.now()
        return {
            "api_counter": str(e.rest_limiter.value(key, tier, now)),
            "api_max": str(tier.api_max),
            "trading": {
                pid: str(e.trade_limiter.value(acct.id, pid, tier, now))
                for (aid, pid) in e.trade_limiter.counters
                if aid == acct.id
            },
        }

    r = app.router
    r.add_get("/sandbox/health", health)
    r.add_post("/sandbox/accounts", guarded(create_account))
    r.add_get("/sandbox/accounts/{id}", guarded(get_account))
    r.add_post("/sandbox/accounts/{id}/keys", guarded(create_key))
    r.add_post("/sandbox/accounts/{id}/deposits", guarded(deposit))
    r.add_post("/sandbox/accounts/{id}/withdraw-addresses", guarded(withdraw_address))
    r.add_post("/sandbox/accounts/{id}/subaccounts", guarded(subaccount))
    r.add_post("/sandbox/status", guarded(set_status))
    r.add_post("/sandbox/faults", guarded(set_faults))
    r.add_get("/sandbox/faults", guarded(get_faults))
    r.add_post("/sandbox/markets/{pair}/price", guarded(move_price))
    r.add_post("/sandbox/clock", guarded(clock))
    r.add_post("/sandbox/config", guarded(config))
    r.add_post("/sandbox/save", guarded(save))
    r.add_get("/sandbox/limits", guarded(limits))
