"""Save/restore sandbox state as JSON (atomic write: temp file + rename)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from .auth import ApiKey
from .engine import Account, Engine, Order
from .engine.accounts import account_iiban

VERSION = 1


def _enc(value: object) -> object:
    if isinstance(value, Decimal):
        return {"$d": format(value, "f")}
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(type(value).__name__)


def _hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "$d" in d:
        return Decimal(d["$d"])
    return d


def snapshot(engine: Engine) -> dict[str, Any]:
    accounts = []
    for a in engine.accounts.values():
        d = dataclasses.asdict(a)
        d["orders"] = {t: dataclasses.asdict(order) for t, order in a.orders.items()}
        d["ws_tokens"] = {}
        accounts.append(d)
    return {
        "version": VERSION,
        "seed": engine.seed,
        "status": engine.status,
        "pair_status": engine.pair_status,
        "now": engine.now(),
        "ids": engine.ids.state(),
        "seq": engine._seq,
        "acct_seq": engine._acct_seq,
        "keys": [k.to_json() for k in engine.auth.keys.values()],
        "accounts": accounts,
        "markets": {pid: {"mid": m.mid, "last": m.last_price} for pid, m in engine.markets.items()},
    }


def save(engine: Engine, path: str) -> None:
    data = json.dumps(snapshot(engine), default=_enc)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(engine: Engine, path: str) -> bool:
    p = Path(path)
    if not p.exists():
        return False
    data = json.loads(p.read_text(), object_hook=_hook)
    if data.get("version") != VERSION:
        return False
    engine.status = data["status"]
    engine.pair_status.update(
        {
            pid: mode
            for pid, mode in data.get("pair_status", {}).items()
            if pid in engine.pair_status
        }
    )
    engine.ids.restore(data["ids"])
    engine._seq = int(data["seq"])
    engine._acct_seq = int(data["acct_seq"])
    for k in data["keys"]:
        key = ApiKey.from_json(k)
        engine.auth.keys[key.key] = key
    order_fields = {f.name for f in dataclasses.fields(Order)}
    acct_fields = {f.name for f in dataclasses.fields(Account)}
    for raw in data["accounts"]:
        orders = raw.pop("orders")
        acct = Account(**{k: v for k, v in raw.items() if k in acct_fields})
        acct.iiban = acct.iiban or account_iiban(acct.id)
        acct.orders = {
            t: Order(**{k: v for k, v in order.items() if k in order_fields})
            for t, order in orders.items()
        }
        engine.accounts[acct.id] = acct
        for t in acct.open_ids:
            order = acct.orders[t]
            if order.status == "pending" and order.starttm:
                engine.pending_start.append(order)
            elif order.ordertype.startswith(("stop", "take", "trailing")) and not order.triggered:
                engine.untriggered[order.pair].append(order)
            elif order.resting_limit() is not None:
                engine.book_orders[(order.pair, order.side)].append(order)
    for lst in engine.book_orders.values():
        lst.sort(key=engine._book_key)
    for pid, m in data["markets"].items():
        if pid in engine.markets:
            engine.markets[pid].move_to(m["mid"])
            engine.markets[pid].last_price = m["last"]
    return True
