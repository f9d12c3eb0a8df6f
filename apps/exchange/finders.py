"""Finders: did an operation whose answer was lost happen on Kraken? One per method.

The reconciler (services.operation_reconcile) asks the finder of the operation's kind, with
the key that sent it, and gets one of three verdicts:

- Found(result): Kraken shows the call's effect; `result` holds the ids found (txid, refid,
  transfer or ledger id, amend id), shaped like Kraken's own answer where possible.
- Absent(): Kraken shows no trace *now*. Kraken may take a moment to show a fresh order or
  withdrawal, so one miss proves nothing; the reconciler needs several misses spaced out in
  time before it calls the operation NOT_PLACED. `certain=True` when nothing could have
  happened at all (a validate-only call).
- Undecidable(note): Kraken could not be asked (down, rate limit, permission): stays UNKNOWN.

Finders only read (OpenOrders, ClosedOrders, QueryOrders, OrderAmends, WithdrawStatus,
Ledgers, Earn status calls): idempotent calls the client retries on its own. Nothing here
resends the operation.

What Kraken made hard, method by method:

- AddOrder carries our `cl_ord_id` (a UUID the portal generates), which OpenOrders and
  ClosedOrders filter on. An order that cannot carry one (Kraken refuses `cl_ord_id` with a
  conditional close) carries a `userref`; userrefs are not unique (other programs on the
  account use them), so the finder matches userref *and* pair, side, volume and a time window,
  and never uses the userref to cancel anything.
- AmendOrder keeps the order's ids; its trace is an entry in the order's amend history
  (OrderAmends) made after we sent it, with the quantity/price we asked for.
- CancelOrder and CancelAll leave no record of their own: the orders' state is the trace
  (the order is no longer open; no order opened before the CancelAll is still open).
- Withdraw answers a refid only in the answer we lost. WithdrawStatus lists withdrawals by
  asset with their destination key, amount and fee, so the finder matches destination, amount
  (Kraken reports the amount net of the fee) and time, skipping refids other operations
  already own; at most one alike withdrawal is in flight (models: in_flight_key).
- WithdrawCancel: WithdrawStatus shows `status-prop` canceled (or cancel-denied) on the refid.
- AccountTransfer: the transfer's ledger entries (Ledgers type=transfer) on the key's account,
  matched by asset, amount and time, skipping ledger ids other operations own; one alike
  transfer in flight per from, to and asset.
- Earn Allocate/Deallocate: AllocateStatus/DeallocateStatus says `pending` while one is in
  flight (at most one per strategy); once settled, the earn ledger entry (allocation or
  deallocation, by amount and time) is the trace, or, for a bonded strategy's deallocation
  still unbonding (nothing back in spot yet), its unbonding allocation in Earn/Allocations.
  A transient error on the status call (`EGeneral:Internal error`, 5xx) says nothing: the
  ledger and Allocations (`pending` holds the amount in flight) still may; if neither shows
  it, the look is Undecidable (stays UNKNOWN, noted, looked at again after the usual spacing),
  never a miss. Only a status answer and Allocations agreeing nothing happened make a miss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from apps.exchange.models import Kind, Operation, State
from apps.kraken.client import KrakenKey, kraken_private, kraken_public
from apps.kraken.errors import KrakenError


@dataclass(frozen=True)
class Found:
    result: dict[str, Any]


@dataclass(frozen=True)
class Absent:
    certain: bool = False
    note: str = ""


@dataclass(frozen=True)
class Undecidable:
    note: str


Verdict = Found | Absent | Undecidable


@dataclass
class Look:
    """What a finder needs: the operation, a key to read with, and Kraken's clock."""

    operation: Operation
    key: KrakenKey
    # Kraken's clock minus ours, in seconds: time windows are compared in Kraken's time, so
    # a skewed clock (or the sandbox's fast-forwarded one) does not hide an order.
    clock_offset: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def sent_ts(self) -> float:
        """When the call left, in Kraken's clock (seconds since the epoch)."""
        sent = self.operation.sent_at or self.operation.created_at
        return sent.timestamp() + self.clock_offset

    @property
    def window_start(self) -> float:
        return self.sent_ts - _setting("EXCHANGE_FINDER_SKEW", 120.0)

    def private(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return kraken_private(self.key, method, params or {})


Finder = Callable[[Look], Verdict]
_FINDERS: dict[str, Finder] = {}


def finder(kind: str) -> Callable[[Finder], Finder]:
    def register(func: Finder) -> Finder:
        _FINDERS[Kind(kind)] = func
        return func

    return register


def finder_for(kind: str) -> Finder:
    return _FINDERS[kind]


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def kraken_clock_offset() -> float:
    """Kraken's clock minus ours (public Time; whole seconds, so only skew beyond a second
    matters, and the windows allow EXCHANGE_FINDER_SKEW)."""
    before = time.time()
    answer = kraken_public("Time")
    after = time.time()
    return float(answer["unixtime"]) - (before + after) / 2


def find(operation: Operation, key: KrakenKey) -> Verdict:
    """The verdict of the operation's finder; Kraken errors make it Undecidable."""
    if operation.validate_only:
        # Kraken only checked the request: nothing can exist to be found.
        return Absent(certain=True, note="validate-only: Kraken never acts on it")
    try:
        look = Look(operation=operation, key=key, clock_offset=kraken_clock_offset())
        return finder_for(operation.kind)(look)
    except KrakenError as error:
        return Undecidable(note=f"Kraken could not be asked: {error.code or error.detail}")


# --- helpers -----------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _seconds(value: Any) -> float:
    """Kraken's timestamps: seconds (float), or ms/µs/ns integers (OrderAmends uses ns)."""
    number = float(value)
    for scale in (1e18, 1e15, 1e12):
        if number > scale:
            return number / (scale / 1e9)
    return number


def _owned(operation: Operation, kinds: Iterable[str], name: str) -> set[str]:
    """Ids other settled operations of this organization already own (result[name]), so two
    alike operations never both claim one withdrawal, transfer or order."""
    since = operation.created_at - timedelta(days=2)
    values = (
        Operation.objects.filter(
            org_id=operation.org_id, kind__in=list(kinds), state=State.DONE, created_at__gte=since
        )
        .exclude(pk=operation.pk)
        .values_list("result", flat=True)
    )
    owned: set[str] = set()
    for result in values:
        if isinstance(result, dict) and result.get(name):
            value = result[name]
            owned.update(str(v) for v in (value if isinstance(value, list) else [value]))
    return owned


def _pair_key(name: Any) -> str:
    return str(name or "").replace("/", "").upper()


def _order_by_client_id(look: Look, cl_ord_id: str) -> tuple[str, dict[str, Any]] | None:
    opened = look.private("OpenOrders", {"cl_ord_id": cl_ord_id}).get("open") or {}
    for txid, order in opened.items():
        return str(txid), order
    closed = (
        look.private("ClosedOrders", {"cl_ord_id": cl_ord_id, "start": int(look.window_start)}).get(
            "closed"
        )
        or {}
    )
    for txid, order in closed.items():
        return str(txid), order
    return None


def _order(look: Look, params: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The order an amend or cancel is about (by txid or cl_ord_id)."""
    if params.get("cl_ord_id"):
        return _order_by_client_id(look, str(params["cl_ord_id"]))
    txid = str(params.get("txid") or params.get("order_id") or "")
    if not txid:
        return None
    try:
        answer = look.private("QueryOrders", {"txid": txid})
    except KrakenError as error:
        if error.code.startswith(("EOrder:Invalid order", "EOrder:Unknown order")):
            return None
        raise
    order = (answer or {}).get(txid)
    return (txid, order) if order else None


# --- orders ------------------------------------------------------------------------------


@finder(Kind.ADD_ORDER)
def find_added_order(look: Look) -> Verdict:
    params = look.operation.params
    cl_ord_id = params.get("cl_ord_id")
    if cl_ord_id:
        hit = _order_by_client_id(look, str(cl_ord_id))
        if hit is None:
            return Absent()
        txid, order = hit
        return Found({"txid": [txid], "cl_ord_id": cl_ord_id, "status": order.get("status")})
    return _find_by_userref(look, params)


def _find_by_userref(look: Look, params: dict[str, Any]) -> Verdict:
    """An order without cl_ord_id: userref AND pair, side, volume and time. Userrefs are
    shared with other programs on the account, so the userref alone proves nothing."""
    userref = params.get("userref")
    if userref in (None, ""):
        return Undecidable(note="the order has neither cl_ord_id nor userref")
    opened = look.private("OpenOrders", {"userref": userref}).get("open") or {}
    closed = (
        look.private("ClosedOrders", {"userref": userref, "start": int(look.window_start)}).get(
            "closed"
        )
        or {}
    )
    owned = _owned(look.operation, [Kind.ADD_ORDER], "txid")
    volume = _dec(params.get("volume"))
    window_end = look.sent_ts + _setting("EXCHANGE_FINDER_WINDOW", 600.0)
    matches = []
    for txid, order in {**opened, **closed}.items():
        descr = order.get("descr") or {}
        opened_at = float(order.get("opentm") or 0)
        if (
            str(txid) not in owned
            and _pair_key(descr.get("pair")) == _pair_key(params.get("pair"))
            and descr.get("type") == params.get("type")
            and _dec(order.get("vol")) == volume
            and look.window_start <= opened_at <= window_end
        ):
            matches.append((opened_at, str(txid)))
    if not matches:
        return Absent()
    # Several alike orders with one userref in the window: the earliest not yet owned is
    # ours (operations on one key are sent in order).
    matches.sort()
    return Found({"txid": [matches[0][1]], "userref": userref, "matched_by": "userref"})


@finder(Kind.AMEND_ORDER)
def find_amend(look: Look) -> Verdict:
    params = look.operation.params
    hit = _order(look, params)
    if hit is None:
        return Absent(note="the order is not on Kraken")
    txid, _order_data = hit
    amends = (look.private("OrderAmends", {"order_id": txid}) or {}).get("amends") or []
    owned = _owned(look.operation, [Kind.AMEND_ORDER], "amend_id")
    wanted_qty = _dec(params.get("order_qty"))
    wanted_price = _dec(params.get("limit_price"))
    for amend in amends:
        if amend.get("amend_type") == "original" or str(amend.get("amend_id")) in owned:
            continue
        if _seconds(amend.get("timestamp") or 0) < look.window_start:
            continue
        if wanted_qty is not None and _dec(amend.get("order_qty")) != wanted_qty:
            continue
        if wanted_price is not None and _dec(amend.get("limit_price")) != wanted_price:
            continue
        return Found({"amend_id": amend.get("amend_id"), "txid": txid})
    return Absent()


@finder(Kind.CANCEL_ORDER)
def find_cancel(look: Look) -> Verdict:
    hit = _order(look, look.operation.params)
    if hit is None:
        return Absent(note="the order is not on Kraken")
    txid, order = hit
    status = order.get("status")
    if status in ("open", "pending"):
        return Absent(note=f"order {txid} is still {status}")
    # No longer open: cancelled (by us or anyone), filled or expired. Either way there is
    # nothing left for this cancel to do; `count` says whether it was a cancellation.
    return Found({"count": 1 if status == "canceled" else 0, "txid": txid, "status": status})


@finder(Kind.CANCEL_ALL)
def find_cancel_all(look: Look) -> Verdict:
    opened = look.private("OpenOrders").get("open") or {}
    older = [
        txid
        for txid, order in opened.items()
        if float(order.get("opentm") or 0) < look.sent_ts - 1.0
        # Orders in a pair under maintenance are skipped by CancelAll (they cannot be
        # cancelled then); they say nothing about whether it ran.
        and order.get("status") == "open"
    ]
    if older:
        return Absent(note=f"{len(older)} order(s) placed before it are still open")
    return Found({"count": None, "note": "no order placed before it is still open"})


# --- funding -----------------------------------------------------------------------------


def _withdrawals(look: Look, asset: str) -> list[dict[str, Any]]:
    answer = look.private("WithdrawStatus", {"asset": asset, "start": int(look.window_start)})
    if isinstance(answer, dict):  # the paginated shape of the newer API
        answer = answer.get("withdrawals") or answer.get("withdraw") or []
    return [w for w in answer or [] if isinstance(w, dict)]


@finder(Kind.WITHDRAW)
def find_withdrawal(look: Look) -> Verdict:
    params = look.operation.params
    amount = _dec(params.get("amount"))
    owned = _owned(look.operation, [Kind.WITHDRAW], "refid")
    window_end = look.sent_ts + _setting("EXCHANGE_FINDER_WINDOW", 600.0)
    for entry in sorted(_withdrawals(look, str(params["asset"])), key=lambda w: w.get("time", 0)):
        net, fee = _dec(entry.get("amount")), _dec(entry.get("fee")) or Decimal(0)
        if str(entry.get("refid")) in owned:
            continue
        if entry.get("key") not in (None, params.get("key")):
            continue
        if net is None or amount not in (net, net + fee):
            continue
        if not look.window_start <= float(entry.get("time") or 0) <= window_end:
            continue
        return Found({"refid": entry.get("refid"), "status": entry.get("status")})
    return Absent()


@finder(Kind.WITHDRAW_CANCEL)
def find_withdraw_cancel(look: Look) -> Verdict:
    params = look.operation.params
    refid = str(params.get("refid"))
    for entry in _withdrawals(look, str(params["asset"])):
        if str(entry.get("refid")) != refid:
            continue
        prop = entry.get("status-prop")
        if prop in ("canceled", "cancel-pending"):
            return Found({"cancelled": True, "refid": refid, "status-prop": prop})
        if prop == "cancel-denied":
            # The call arrived and Kraken said no (it answers `false`): the call happened.
            return Found({"cancelled": False, "refid": refid, "status-prop": prop})
        return Absent(note=f"withdrawal {refid} shows no cancellation")
    return Absent(note=f"withdrawal {refid} is not listed")


def _ledger(look: Look, asset: str, ledger_type: str) -> dict[str, dict[str, Any]]:
    answer = look.private(
        "Ledgers", {"asset": asset, "type": ledger_type, "start": int(look.window_start)}
    )
    return dict((answer or {}).get("ledger") or {})


@finder(Kind.ACCOUNT_TRANSFER)
def find_transfer(look: Look) -> Verdict:
    params = look.operation.params
    amount = _dec(params.get("amount"))
    owned = _owned(look.operation, [Kind.ACCOUNT_TRANSFER], "transfer_id")
    window_end = look.sent_ts + _setting("EXCHANGE_FINDER_WINDOW", 600.0)
    entries = sorted(
        _ledger(look, str(params["asset"]), "transfer").items(), key=lambda kv: kv[1].get("time", 0)
    )
    for ledger_id, entry in entries:
        value = _dec(entry.get("amount"))
        refid = str(entry.get("refid"))
        if value is None or amount is None or abs(value) != amount or refid in owned:
            continue
        if str(entry.get("subtype") or "") == "spottofutures":
            continue  # a WalletTransfer, not an AccountTransfer
        if not look.window_start <= float(entry.get("time") or 0) <= window_end:
            continue
        return Found({"transfer_id": refid, "ledger_id": ledger_id, "status": "complete"})
    return Absent()


# --- Earn --------------------------------------------------------------------------------


def _find_earn(look: Look, *, status_method: str, subtype: str, sign: int) -> Verdict:
    params = look.operation.params
    strategy_id = str(params["strategy_id"])
    background_error = ""
    status_unasked = ""  # the status call failed transiently: it says nothing either way
    try:
        status = look.private(status_method, {"strategy_id": strategy_id}) or {}
    except KrakenError as error:
        status = {}
        if error.transient:
            # `EGeneral:Internal error`, a 5xx, a rate limit: Kraken could not answer now. A
            # background failure may hide behind it too, so it proves nothing: look at the
            # other traces, and if none shows, count this look as "could not look".
            status_unasked = error.code or error.detail or "no answer"
        else:
            # Kraken reports a (de)allocation that failed in the background on the status
            # call: the call itself was accepted.
            background_error = error.code
    if status.get("pending"):
        return Found({"accepted": True, "pending": True})
    amount = _dec(params.get("amount"))
    owned = _owned(look.operation, [look.operation.kind], "ledger_id")
    window_end = look.sent_ts + _setting("EXCHANGE_FINDER_WINDOW", 600.0)
    # Earn calls name only the strategy; the caller puts its asset in the reference.
    asset = look.operation.reference.get("asset") or params.get("asset")
    if asset:
        entries = _ledger(look, str(asset), "earn")
    else:
        entries = dict((look.private("Ledgers", {"type": "earn"}) or {}).get("ledger") or {})
    for ledger_id, entry in sorted(entries.items(), key=lambda kv: kv[1].get("time", 0)):
        value = _dec(entry.get("amount"))
        if ledger_id in owned or entry.get("subtype") != subtype or value is None:
            continue
        if amount is None or value != sign * amount:
            continue
        if not look.window_start <= float(entry.get("time") or 0) <= window_end:
            continue
        result: dict[str, Any] = {"accepted": True, "pending": False, "ledger_id": ledger_id}
        if background_error:
            result["background_error"] = background_error
        return Found(result)
    if background_error:
        return Absent()
    holding = _earn_holding(look, strategy_id)
    if amount is not None and _dec(_native(holding, "pending")) == -sign * amount:
        # Allocations.pending holds the amount in flight (negative when deallocating): the
        # status call could not say so, Allocations does.
        return Found({"accepted": True, "pending": True, "seen_in": "Earn/Allocations"})
    if subtype == "deallocation" and amount is not None:
        # A bonded strategy's deallocation unbonds for days before it pays anything back to
        # spot: until then its trace is an unbonding allocation in Earn/Allocations, of the
        # amount, made after the call left.
        lock = _unbonding_lock(look, holding, amount, window_end)
        if lock:
            return Found({"accepted": True, "pending": False, "unbonding": lock})
    if status_unasked:
        # Not a miss: a miss needs the status call and Allocations to agree nothing happened.
        # The reconciler leaves the operation UNKNOWN with this note and looks again after
        # the usual spacing; nothing is resent.
        looks = look.operation.reconcile_attempts + 1  # counted before this look
        return Undecidable(
            note=(
                f"Could not look: Kraken's {status_method} answered {status_unasked}"
                f" ({looks} look{'s' if looks != 1 else ''} so far); the ledger and"
                " Allocations show nothing yet. Looking again later; nothing is resent."
            )
        )
    return Absent()


def _earn_holding(look: Look, strategy_id: str) -> dict[str, Any]:
    """The strategy's item in Earn/Allocations ({} when the account holds none)."""
    answer = look.private("Earn/Allocations", {"hide_zero_allocations": True}) or {}
    for item in answer.get("items") or []:
        if str(item.get("strategy_id")) == strategy_id:
            return dict(item)
    return {}


def _native(holding: dict[str, Any], part: str) -> Any:
    value = (holding.get("amount_allocated") or {}).get(part)
    return value.get("native") if isinstance(value, dict) else value


def _unbonding_lock(look: Look, holding: dict[str, Any], amount: Decimal, window_end: float) -> str:
    """The `expires` of an unbonding allocation of `amount` in the strategy's holding that
    began inside the look's window and no other operation owns ('' when there is none)."""
    owned = _owned(look.operation, [Kind.EARN_DEALLOCATE], "unbonding")
    unbonding = (holding.get("amount_allocated") or {}).get("unbonding") or {}
    for lock in unbonding.get("allocations") or []:
        expires = str(lock.get("expires") or "")
        created = _iso_seconds(lock.get("created_at"))
        if _dec(lock.get("native")) != amount or not expires or expires in owned:
            continue
        if created is not None and look.window_start <= created <= window_end:
            return expires
    return ""


def _iso_seconds(value: Any) -> float | None:
    """An RFC 3339 time (Earn's `created_at`) as seconds since the epoch."""
    from django.utils.dateparse import parse_datetime

    when = parse_datetime(str(value)) if value else None
    return when.timestamp() if when is not None else None


@finder(Kind.EARN_ALLOCATE)
def find_allocation(look: Look) -> Verdict:
    # Allocating takes the amount out of the spot wallet at once (a negative earn entry).
    return _find_earn(look, status_method="Earn/AllocateStatus", subtype="allocation", sign=-1)


@finder(Kind.EARN_DEALLOCATE)
def find_deallocation(look: Look) -> Verdict:
    # Deallocating pays the amount back to the spot wallet when it settles.
    return _find_earn(look, status_method="Earn/DeallocateStatus", subtype="deallocation", sign=1)
