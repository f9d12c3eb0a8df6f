"""Funding endpoints: deposits, withdrawals (with a time-driven status machine), wallet and
subaccount transfers."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from .engine import Account, Engine
from .errors import KrakenError, invalid
from .funding_methods import METHODS, Method
from .pairs import ASSETS, Asset, fmt, resolve_asset
from .params import Params, check_known, opt_bool, opt_dec, opt_int, opt_str, req_str
from .private import Ctx, Handler, allow
from .util import decimals_of

ZERO = Decimal(0)


WITHDRAW_FLOW = ("Initial", "Pending", "Settled", "Success")


def _asset(p: Params, name: str = "asset") -> Asset:
    raw = req_str(p, name)
    a = resolve_asset(raw)
    if a is None:
        raise KrakenError("EQuery:Unknown asset" if name == "asset" else "EFunding:Unknown asset")
    return a


def _method(a: Asset, name: str | None) -> Method:
    methods = METHODS.get(a.id, [])
    if not methods:
        raise KrakenError("EFunding:No funding method")
    if name is None:
        return methods[0]
    for m in methods:
        if m.name == name:
            return m
    raise KrakenError("EFunding:No funding method")


def _address(engine: Engine, m: Method, acct: Account, n: int) -> str:
    seed = f"{engine.seed}:{acct.id}:{m.name}:{n}".encode()
    h = hashlib.sha256(seed).hexdigest() + hashlib.sha256(seed + b"+").hexdigest()
    if m.addr_prefix == "0x":
        return "0x" + h[:40]
    alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    body = "".join(alphabet[int(h[i : i + 2], 16) % 32] for i in range(0, 2 * m.addr_len, 2))
    return (m.addr_prefix + body)[: max(m.addr_len, len(m.addr_prefix) + 20)]


def deposit_methods(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "aclass", "rebase_multiplier"))
    a = _asset(ctx.params)
    return [
        {
            "method": m.name,
            "limit": False,
            "fee": fmt(ZERO, 10),
            "gen-address": not m.fiat,
            "minimum": fmt(m.minimum, 8),
        }
        for m in METHODS.get(a.id, [])
    ]


def deposit_addresses(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "method", "new", "amount", "aclass"))
    a = _asset(ctx.params)
    m = _method(a, req_str(ctx.params, "method"))
    if m.fiat:
        raise KrakenError("EFunding:No funding method")
    new = opt_bool(ctx.params, "new")
    key = f"{a.id}:{m.name}"
    lst = ctx.acct.deposit_addresses.setdefault(key, [])
    if new or not lst:
        if len(lst) >= 10 and new:
            raise KrakenError("EFunding:Too many addresses")
        for entry in lst:
            entry["new"] = False
        lst.append(
            {"address": _address(ctx.engine, m, ctx.acct, len(lst)), "expiretm": "0", "new": True}
        )
    return [dict(x) for x in reversed(lst)]


def _deposit_json(d: dict[str, Any]) -> dict[str, Any]:
    places = ASSETS[d["asset"]].decimals
    out = {
        "method": d["method"],
        "aclass": "currency",
        "asset": d["asset"],
        "refid": d["refid"],
        "txid": d["txid"],
        "info": d["info"],
        "amount": fmt(d["amount"], places),
        "fee": fmt(d["fee"], places),
        "time": int(d["time"]),
        "status": d["status"],
    }
    return out


_HISTORY_PARAMS = allow(
    "asset", "aclass", "method", "start", "end", "cursor", "limit", "rebase_multiplier"
)


def _history(ctx: Ctx, rows: list[dict[str, Any]], default_limit: int) -> list[dict[str, Any]]:
    """The filters DepositStatus and WithdrawStatus share: ``asset``, ``method``, ``start``
    and ``end`` (unix seconds; entries created before ``start`` or after ``end`` are left
    out), newest first, at most ``limit``."""
    check_known(ctx.params, _HISTORY_PARAMS)
    a = _asset(ctx.params) if opt_str(ctx.params, "asset") else None
    method = opt_str(ctx.params, "method")
    start = opt_dec(ctx.params, "start")
    end = opt_dec(ctx.params, "end")
    limit = opt_int(ctx.params, "limit") or default_limit
    items = [
        r
        for r in rows
        if (a is None or r["asset"] == a.id)
        and (method is None or r["method"] == method)
        and (start is None or r["time"] >= start)
        and (end is None or r["time"] <= end)
    ]
    items.sort(key=lambda r: -r["time"])
    return items[:limit]


def deposit_status(ctx: Ctx) -> Any:
    items = [_deposit_json(d) for d in _history(ctx, ctx.acct.deposits, 25)]
    if _paginated(ctx.params):
        return {"deposit": items, "next_cursor": None}
    return items


def _paginated(p: Params) -> bool:
    """``cursor`` is bool-or-string: false/absent → plain list, anything else → page."""
    v = p.get("cursor")
    if v is None or v is False:
        return False
    return not (isinstance(v, str) and v.strip().lower() in ("false", "0", ""))


def credit_deposit(
    engine: Engine,
    acct: Account,
    asset: str,
    amount: Decimal,
    method: str | None = None,
) -> str:
    a = ASSETS[asset]
    m = _method(a, method)
    refid = engine.ids.refid("Q")
    engine.credit(acct, a.id, amount, "deposit", "", refid)
    txid = hashlib.sha256(refid.encode()).hexdigest()
    acct.deposits.append(
        {
            "method": m.name,
            "asset": a.id,
            "refid": refid,
            "txid": txid,
            "info": _address(engine, m, acct, 0) if not m.fiat else "",
            "amount": amount,
            "fee": ZERO,
            "time": engine.now(),
            "status": "Success",
        }
    )
    return refid


def withdraw_methods(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "aclass", "network", "rebase_multiplier"))
    name = opt_str(ctx.params, "asset")
    assets = [_asset(ctx.params)] if name else list(ASSETS.values())
    network = opt_str(ctx.params, "network")
    return [
        {
            "asset": m.asset,
            "method": m.name,
            "minimum": fmt(m.minimum, 8),
            **({"network": m.network} if m.network else {}),
        }
        for a in assets
        for m in METHODS.get(a.id, [])
        if network is None or m.network == network
    ]


def withdraw_addresses(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "aclass", "method", "key", "verified"))
    name = opt_str(ctx.params, "asset")
    a = _asset(ctx.params) if name else None
    method = opt_str(ctx.params, "method")
    key = opt_str(ctx.params, "key")
    verified = ctx.params.get("verified")
    out = []
    for w in ctx.acct.withdraw_addresses:
        if a is not None and w["asset"] != a.id:
            continue
        if method is not None and w["method"] != method:
            continue
        if key is not None and w["key"] != key:
            continue
        if verified is not None and w["verified"] != opt_bool(ctx.params, "verified"):
            continue
        out.append(
            {
                "address": w["address"],
                "asset": ASSETS[w["asset"]].altname,
                "method": w["method"],
                "key": w["key"],
                "verified": w["verified"],
            }
        )
    return out


def _find_key(acct: Account, a: Asset, key: str) -> dict[str, Any]:
    for w in acct.withdraw_addresses:
        if w["key"] == key and w["asset"] == a.id:
            return w
    raise KrakenError("EFunding:Unknown withdraw key")


def _amount(p: Params, a: Asset) -> Decimal:
    amount = opt_dec(p, "amount")
    if amount is None:
        raise invalid("amount")
    if amount <= 0 or decimals_of(amount) > a.decimals:
        raise KrakenError("EFunding:Invalid amount")
    return amount


def withdraw_info(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "key", "amount", "aclass"))
    a = _asset(ctx.params)
    w = _find_key(ctx.acct, a, req_str(ctx.params, "key"))
    amount = _amount(ctx.params, a)
    m = _method(a, w["method"])
    avail = max(ZERO, ctx.acct.available(a.id) - m.fee)
    return {
        "method": m.name,
        "limit": fmt(min(m.limit, avail), 8),
        "amount": fmt(amount - m.fee, 8),
        "fee": fmt(m.fee, 8),
    }


def withdraw(ctx: Ctx) -> Any:
    p = ctx.params
    check_known(
        p, allow("asset", "key", "amount", "address", "max_fee", "aclass", "rebase_multiplier")
    )
    engine = ctx.engine
    if engine.status == "maintenance":
        raise KrakenError("EService:Unavailable")
    a = _asset(p)
    w = _find_key(ctx.acct, a, req_str(p, "key"))
    amount = _amount(p, a)
    addr = opt_str(p, "address")
    if addr is not None and addr != w["address"]:
        raise KrakenError("EFunding:Invalid withdrawal address")
    m = _method(a, w["method"])
    max_fee = opt_dec(p, "max_fee")
    if max_fee is not None and m.fee > max_fee:
        raise KrakenError("EFunding:Max fee exceeded")
    if amount < m.minimum:
        raise KrakenError("EFunding:Invalid amount")
    if amount > m.limit:
        raise KrakenError("EFunding:Limit exceeded")
    # Kraken deducts the fee from the amount; the balance moves by ``amount``.
    if ctx.acct.available(a.id) < amount:
        raise KrakenError("EFunding:Insufficient funds")
    refid = engine.ids.refid("F")
    engine.credit(ctx.acct, a.id, -(amount - m.fee), "withdrawal", "", refid, fee=m.fee)
    ctx.acct.withdrawals.append(
        {
            "refid": refid,
            "asset": a.id,
            "method": m.name,
            "network": m.network,
            "key": w["key"],
            "address": w["address"],
            "amount": amount - m.fee,
            "fee": m.fee,
            "time": engine.now(),
            "status": "Initial",
            "status_prop": None,
            "fail": "fail" in w["key"].lower(),
            "hold_steps": int(w.get("hold_steps", 0)),
        }
    )
    return {"refid": refid}


def advance_withdrawals(engine: Engine, step: float) -> None:
    """Move withdrawals along Initial → Pending → Settled → Success (or Failure)."""
    now = engine.now()
    for acct in engine.accounts.values():
        for w in acct.withdrawals:
            if w["status"] in ("Success", "Failure") or w["status_prop"] == "canceled":
                continue
            raw = int((now - w["time"]) // step) if step > 0 else 3 + w.get("hold_steps", 0)
            held = w.get("hold_steps", 0)
            if held and 1 <= raw <= held:
                # On hold for review after Kraken took it: Pending, status-prop onhold.
                w["status"], w["status_prop"] = "Pending", "onhold"
                continue
            if w["status_prop"] == "onhold":
                w["status_prop"] = None  # released
            stage = min(3, raw - held if held and raw > held else raw)
            if w["fail"] and stage >= 2:
                w["status"] = "Failure"
                engine.credit(
                    acct, w["asset"], w["amount"] + w["fee"], "withdrawal", "", w["refid"]
                )
                continue
            w["status"] = WITHDRAW_FLOW[stage]


def _withdrawal_json(w: dict[str, Any]) -> dict[str, Any]:
    places = ASSETS[w["asset"]].decimals
    d: dict[str, Any] = {
        "method": w["method"],
        "aclass": "currency",
        "asset": w["asset"],
        "refid": w["refid"],
        "info": w["address"],
        "amount": fmt(w["amount"], places),
        "fee": fmt(w["fee"], places),
        "time": int(w["time"]),
        "status": w["status"],
        "key": w["key"],
    }
    if w["status"] in ("Settled", "Success"):
        # The blockchain txid exists only once the transaction was broadcast.
        d["txid"] = hashlib.sha256(w["refid"].encode()).hexdigest()
    if w["network"]:
        d["network"] = w["network"]
    if w["status_prop"]:
        d["status-prop"] = w["status_prop"]
    return d


def withdraw_status(ctx: Ctx) -> Any:
    # The spec documents only the plain list for WithdrawStatus, even with ``cursor``.
    return [_withdrawal_json(w) for w in _history(ctx, ctx.acct.withdrawals, 500)]


def withdraw_cancel(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "refid"))
    a = _asset(ctx.params)
    refid = req_str(ctx.params, "refid")
    if any(
        entry["refid"] == refid and entry["subtype"] == "spottofutures"
        for entry in ctx.acct.ledgers.values()
    ):
        # A WalletTransfer needs no permission to cancel (spec); it settled at once, so
        # there is nothing left to cancel.
        return False
    if "withdraw" not in ctx.key.permissions:
        raise KrakenError("EGeneral:Permission denied")
    for w in ctx.acct.withdrawals:
        if w["refid"] == refid and w["asset"] == a.id:
            if w["status"] != "Initial" or w["status_prop"]:
                w["status_prop"] = w["status_prop"] or "cancel-denied"
                return False
            w["status_prop"] = "canceled"
            w["status"] = "Failure"
            ctx.engine.credit(ctx.acct, a.id, w["amount"] + w["fee"], "withdrawal", "", refid)
            return True
    raise KrakenError("EFunding:Unknown reference id")


def wallet_transfer(ctx: Ctx) -> Any:
    p = ctx.params
    check_known(p, allow("asset", "from", "to", "amount"))
    a = _asset(p)
    if req_str(p, "from") != "Spot Wallet" or req_str(p, "to") != "Futures Wallet":
        raise invalid("to")
    amount = _amount(p, a)
    if ctx.acct.available(a.id) < amount:
        raise KrakenError("EFunding:Insufficient funds")
    refid = ctx.engine.ids.refid("F")
    ctx.engine.credit(ctx.acct, a.id, -amount, "transfer", "spottofutures", refid)
    return {"refid": refid}


def create_subaccount(ctx: Ctx) -> Any:
    p = ctx.params
    check_known(p, allow("username", "email"))
    username = req_str(p, "username")
    email = req_str(p, "email")
    if ctx.acct.parent is not None:
        raise KrakenError("EGeneral:Permission denied")
    if "@" not in email:
        raise invalid("email")
    if any(x.username == username for x in ctx.engine.accounts.values()):
        raise invalid("username")
    sub = ctx.engine.create_account(parent=ctx.acct.id)
    sub.username, sub.email = username, email
    return True


def account_transfer(ctx: Ctx) -> Any:
    p = ctx.params
    check_known(p, allow("asset", "amount", "from", "to", "asset_class"))
    engine = ctx.engine
    a = _asset(p)
    amount = _amount(p, a)
    # from/to: the account id (IIBAN, FUNDING-EARN.md), the username, or the sandbox id.
    src = engine.find_account(req_str(p, "from"))
    dst = engine.find_account(req_str(p, "to"))
    if src is None:
        raise invalid("from")
    if dst is None:
        raise invalid("to")
    master = ctx.acct.id if ctx.acct.parent is None else None
    family = {master} | {x.id for x in engine.accounts.values() if x.parent == master}
    if master is None or src.id not in family or dst.id not in family:
        raise KrakenError("EGeneral:Permission denied")
    if src.available(a.id) < amount:
        raise KrakenError("EFunding:Insufficient funds")
    tid = engine.ids.kid("T")
    engine.credit(src, a.id, -amount, "transfer", "spotfromsubaccount", tid)
    engine.credit(dst, a.id, amount, "transfer", "spottosubaccount", tid)
    return {"transfer_id": tid, "status": "complete"}


FUNDING: dict[str, Handler] = {
    "DepositMethods": deposit_methods,
    "DepositAddresses": deposit_addresses,
    "DepositStatus": deposit_status,
    "WithdrawMethods": withdraw_methods,
    "WithdrawAddresses": withdraw_addresses,
    "WithdrawInfo": withdraw_info,
    "Withdraw": withdraw,
    "WithdrawStatus": withdraw_status,
    "WithdrawCancel": withdraw_cancel,
    "WalletTransfer": wallet_transfer,
    "CreateSubaccount": create_subaccount,
    "AccountTransfer": account_transfer,
}
