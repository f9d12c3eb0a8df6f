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

VERSION = 1


def _enc(o: object) -> object:
    if isinstance(o, Decimal):
        return {"$d": format(o, "f")}
    if isinstance(o, set):
        return sorted(o)
    raise TypeError(type(o).__name__)


def _hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "$d" in d:
        return Decimal(d["$d"])
    return d


def snapshot(e: Engine) -> dict[str, Any]:
    accounts = []
    for a in e.accounts.values():
        d = dataclasses.asdict(a)
        d["orders"] = {t: dataclasses.asdict(o) for t, o in a.orders.items()}
        d["ws_tokens"] = {}
        accounts.append(d)
    return {
        "version": VERSION,
        "seed": e.seed,
        "status": e.status,
        "now": e.now(),
        "ids": e.ids.state(),
        "seq": e._seq,
        "acct_seq": e._acct_seq,
        "keys": [k.to_json() for k in e.auth.keys.values()],
        "accounts": accounts,
        "markets": {pid: {"mid": m.mid, "last": m.last_price} for pid, m in e.markets.items()},
    }


def save(e: Engine, path: str) -> None:
    data = json.dumps(snapshot(e), default=_enc)
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


def load(e: Engine, path: str) -> bool:
    p = Path(path)
    if not p.exists():
        return False
    data = json.loads(p.read_text(), object_hook=_hook)
    if data.get("version") != VERSION:
        return False
    e.status = data["status"]
    e.ids.restore(data["ids"])
    e._seq = int(data["seq"])
    e._acct_seq = int(data["acct_seq"])
    for k in data["keys"]:
        key = ApiKey.from_json(k)
        e.auth.keys[key.key] = key
    order_fields = {f.name for f in dataclasses.fields(Order)}
    acct_fields = {f.name for f in dataclasses.fields(Account)}
    for raw in data["accounts"]:
        orders = raw.pop("orders")
        acct = Account(**{k: v for k, v in raw.items() if k in acct_fields})
        acct.orders = {
            t: Order(**{k: v for k, v in o.items() if k in order_fields}) for t, o in orders.items()
        }
        e.accounts[acct.id] = acct
        for t in acct.open_ids:
            o = acct.orders[t]
            if o.status == "pending" and o.starttm:
                e.pending_start.append(o)
            elif o.ordertype.startswith(("stop", "take", "trailing")) and not o.triggered:
                e.untriggered[o.pair].append(o)
            elif o.resting_limit() is not None:
                e.book_orders[(o.pair, o.side)].append(o)
    for lst in e.book_orders.values():
        lst.sort(key=e._book_key)
    for pid, m in data["markets"].items():
        if pid in e.markets:
            e.markets[pid].move_to(m["mid"])
            e.markets[pid].last_price = m["last"]
    return True
