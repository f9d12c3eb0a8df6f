"""Turning the private streams' events into exchange's records (synchronous, Django ORM).

The streams process (process.py, asyncio) calls these in a worker thread, one account's
messages after another, in the order Kraken sent them. Each call is one transaction; the
hooks (hooks.py) and the live fragments (live.py) run after it commits.

- `executions` → ExchangeOrder (keyed by account and order id; external orders too) and
  ExchangeFill (keyed by account and Kraken's trade id, the `exec_id`, which is TradesHistory's
  key, so a fill learnt twice — live, from the 50-fill snapshot, from TradesHistory — is one
  row). Kraken's WS order statuses become the REST vocabulary ExchangeOrder keeps (pending,
  open, closed, canceled, expired). A final status never goes back to open; executed volume
  never goes down (a snapshot may be older than an update already applied).
- `balances` snapshot → AccountBalance per wallet (source=stream); updates → LedgerEntry
  (once per ledger id) and the wallet's new balance.
- Holds: Kraken's `balances` channel carries no holds, so the stream derives the spot hold
  from the account's open orders it records: a sell holds its unexecuted volume of the base;
  a limit-priced buy its unexecuted cost plus the pair's highest taker fee (Kraken's own
  reserve; HOLD_FEE_DEFAULT when the pair's schedule is unknown). A REST refresh
  (services.balances_refresh) writes BalanceEx's exact `hold_trade`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.exchange.balance_records import dec
from apps.exchange.models import (
    WALLET_MAIN,
    AccountBalance,
    BalanceSource,
    ExchangeFill,
    ExchangeOrder,
    Kind,
    LedgerEntry,
    Operation,
    StreamMark,
    WalletType,
)
from apps.exchange.streams.hooks import (
    balance_hooks_on_commit,
    fill_hooks_on_commit,
    ledger_hooks_on_commit,
    order_hooks_on_commit,
)
from apps.kraken.models import AssetPair
from apps.kraken.naming import normalize_asset, pair_symbol

ZERO = Decimal(0)
HOLD_FEE_DEFAULT = Decimal("0.0040")  # Kraken's highest spot taker fee (0.40 %)

# Kraken's WS v2 order_status → the REST status ExchangeOrder keeps.
STATUS_FROM_WS: dict[str, str] = {
    "pending_new": "pending",
    "new": "open",
    "partially_filled": "open",
    "triggered": "open",
    "filled": "closed",
    "canceled": "canceled",
    "expired": "expired",
}
OPEN_STATUSES = frozenset({"pending", "open"})
FINAL_STATUSES = frozenset({"closed", "canceled", "expired"})
ORDER_TYPES_WITHOUT_HOLD = frozenset({"market"})


@dataclass
class Applied:
    """What one call recorded (row ids), for the live fragments."""

    orders: set[int] = field(default_factory=set)
    new_orders: set[int] = field(default_factory=set)  # of `orders`, those first recorded now
    fills: set[int] = field(default_factory=set)
    balances: set[int] = field(default_factory=set)
    ledger: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.balances or self.ledger)

    def merge(self, other: Applied) -> None:
        self.orders |= other.orders
        self.new_orders |= other.new_orders
        self.fills |= other.fills
        self.balances |= other.balances
        self.ledger |= other.ledger


def when(value: Any) -> datetime | None:
    """RFC 3339 text or a Unix time (REST) as an aware datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float | Decimal):
        return datetime.fromtimestamp(float(value), tz=UTC)
    parsed = parse_datetime(str(value))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _symbol(value: Any) -> str:
    try:
        return pair_symbol(str(value)) if value else ""
    except ValueError:
        return str(value)


# -- executions ------------------------------------------------------------------------------


def _portal_operation(account_id: int, order: ExchangeOrder) -> Operation | None:
    """The AddOrder operation that placed `order`, found by our cl_ord_id (or userref)."""
    if order.operation_id is not None:
        return order.operation
    adds = Operation.objects.filter(account_id=account_id, kind=Kind.ADD_ORDER)
    if order.cl_ord_id:
        return adds.filter(reference__cl_ord_id=order.cl_ord_id).first()
    if order.userref:
        return adds.filter(reference__userref=order.userref).first()
    return None


def placed_by_portal(order: ExchangeOrder) -> bool:
    return order.operation_id is not None


def _order_for(account_id: int, order_id: str, entry: Mapping[str, Any]) -> ExchangeOrder:
    order = (
        ExchangeOrder.objects.select_for_update()
        .filter(account_id=account_id, txid=order_id)
        .first()
    )
    if order is not None:
        return order
    cl_ord_id = str(entry.get("cl_ord_id") or "")
    if cl_ord_id:
        # The operation's record may carry our cl_ord_id before the stream learns the txid.
        order = (
            ExchangeOrder.objects.select_for_update()
            .filter(account_id=account_id, cl_ord_id=cl_ord_id)
            .first()
        )
        if order is not None:
            order.txid = order_id
            return order
    return ExchangeOrder(account_id=account_id, txid=order_id, cl_ord_id=cl_ord_id)


def _apply_order_fields(order: ExchangeOrder, entry: Mapping[str, Any], *, live: bool) -> None:
    """Copy what `entry` says (executions entries are sparse) onto `order`."""
    if entry.get("symbol"):
        order.pair = _symbol(entry["symbol"])
    if entry.get("side"):
        order.side = str(entry["side"])
    if entry.get("order_type"):
        order.order_type = str(entry["order_type"])
    if entry.get("cl_ord_id") and not order.cl_ord_id:
        order.cl_ord_id = str(entry["cl_ord_id"])
    if entry.get("order_userref") not in (None, "", 0) and order.userref is None:
        order.userref = int(entry["order_userref"])
    if entry.get("order_qty") not in (None, ""):
        order.vol = dec(entry["order_qty"])
    if entry.get("limit_price") not in (None, ""):
        order.price = dec(entry["limit_price"])
    cum_qty = entry.get("cum_qty")
    if cum_qty not in (None, "") and dec(cum_qty) >= order.vol_exec:
        order.vol_exec = dec(cum_qty)
        if entry.get("cum_cost") not in (None, ""):
            order.cost = dec(entry["cum_cost"])
        if entry.get("avg_price") not in (None, ""):
            order.avg_price = dec(entry["avg_price"])
    if not live:
        return
    status = STATUS_FROM_WS.get(str(entry.get("order_status") or ""))
    if status and not (order.status in FINAL_STATUSES and status in OPEN_STATUSES):
        order.status = status
    at = when(entry.get("timestamp"))
    if at is not None:
        if order.opened_at is None and entry.get("exec_type") in ("pending_new", "new"):
            order.opened_at = at
        if status in FINAL_STATUSES and order.closed_at is None:
            order.closed_at = at


def _state(order: ExchangeOrder) -> tuple[Any, ...]:
    return tuple(getattr(order, name) for name in _STATE_FIELDS)


_STATE_FIELDS = (
    "pk",
    "txid",
    "cl_ord_id",
    "userref",
    "pair",
    "side",
    "order_type",
    "status",
    "vol",
    "vol_exec",
    "price",
    "avg_price",
    "cost",
    "opened_at",
    "closed_at",
)


def _fee_qty(fees: Iterable[Mapping[str, Any]]) -> Decimal:
    return sum((dec(fee.get("qty")) for fee in fees), ZERO)


def _record_fill(
    order: ExchangeOrder, entry: Mapping[str, Any], applied: Applied
) -> ExchangeFill | None:
    trade_id = str(entry.get("exec_id") or "")
    if not trade_id:
        return None
    fees = [
        {"asset": normalize_asset(str(fee.get("asset") or "")), "qty": str(dec(fee.get("qty")))}
        for fee in entry.get("fees") or []
    ]
    fill, created = ExchangeFill.objects.get_or_create(
        account_id=order.account_id,
        trade_id=trade_id,
        defaults={
            "order": order,
            "order_txid": order.txid,
            "pair": order.pair or _symbol(entry.get("symbol")),
            "side": order.side or str(entry.get("side") or ""),
            "price": dec(entry.get("last_price")),
            "qty": dec(entry.get("last_qty")),
            "cost": dec(entry.get("cost")),
            "fees": fees,
            "liquidity": str(entry.get("liquidity_ind") or "")[:1],
            "executed_at": when(entry.get("timestamp")) or timezone.now(),
        },
    )
    if not created:
        if fill.order_id is None:
            fill.order = order
            fill.save(update_fields=["order"])
        return None
    applied.fills.add(fill.pk)
    return fill


def _refresh_fee(order: ExchangeOrder) -> None:
    # Kraken's order `fee` is in the quote currency. A fee charged in another asset (fcib, or a
    # fee-credit asset) stays on its fills' (asset, qty) lists and is never added into this one
    # number: 0.26 USD and 0.0001 BTC do not sum.
    quote = order.pair.partition("/")[2]
    order.fee = sum(
        (
            _fee_qty(fee for fee in fees if fee.get("asset") == quote)
            for fees in order.fills.values_list("fees", flat=True)
        ),
        ZERO,
    )


def apply_executions(
    *, account_id: int, entries: Sequence[Mapping[str, Any]], snapshot: bool
) -> Applied:
    """Record an `executions` message. A snapshot's trade entries are fills only (Kraken's
    snapshot repeats the last 50 fills; their order status describes the fill, not now)."""
    applied = Applied()
    with transaction.atomic():
        new_fills: list[ExchangeFill] = []
        touched: dict[int, ExchangeOrder] = {}
        for entry in entries:
            order_id = str(entry.get("order_id") or "")
            if not order_id:
                continue
            order = _order_for(account_id, order_id, entry)
            is_trade = entry.get("exec_type") == "trade"
            before = _state(order)
            _apply_order_fields(order, entry, live=not (snapshot and is_trade))
            if order.pk is None or before != _state(order):
                created = order.pk is None
                order.save()
                applied.orders.add(order.pk)
                if created:
                    applied.new_orders.add(order.pk)
            if is_trade:
                fill = _record_fill(order, entry, applied)
                if fill is not None:
                    new_fills.append(fill)
                    applied.orders.add(order.pk)
            touched[order.pk] = order
        for order in touched.values():
            if order.pk not in applied.orders:
                continue
            operation = _portal_operation(account_id, order)
            if operation is not None and order.operation_id is None:
                order.operation = operation
            _refresh_fee(order)
            order.save(update_fields=["fee", "operation"])
            order_hooks_on_commit(order, placed_by_portal=placed_by_portal(order))
        for fill in new_fills:
            owner = touched.get(fill.order_id or 0)
            fill_hooks_on_commit(
                fill, placed_by_portal=bool(owner is not None and placed_by_portal(owner))
            )
        if applied.orders:
            applied.balances |= _recompute_holds(account_id)
    return applied


# -- REST gap fill ---------------------------------------------------------------------------


def apply_rest_trades(*, account_id: int, trades: Mapping[str, Mapping[str, Any]]) -> Applied:
    """Fills from TradesHistory (`{txid: trade}`), for the gap beyond the 50-fill snapshot."""
    entries = [
        {
            "order_id": trade.get("ordertxid"),
            "exec_id": txid,
            "exec_type": "trade",
            "symbol": trade.get("pair"),
            "side": trade.get("type"),
            "order_type": trade.get("ordertype"),
            "last_qty": trade.get("vol"),
            "last_price": trade.get("price"),
            "cost": trade.get("cost"),
            "fees": [{"asset": _fee_asset(trade), "qty": trade.get("fee")}],
            "liquidity_ind": "m" if trade.get("maker") else "t",
            "timestamp": datetime.fromtimestamp(float(trade.get("time") or 0), tz=UTC).isoformat(),
        }
        for txid, trade in trades.items()
    ]
    return apply_executions(account_id=account_id, entries=entries, snapshot=True)


def _fee_asset(trade: Mapping[str, Any]) -> str:
    """TradesHistory names no fee asset: Kraken charges the quote unless the order asked for
    the base (`fcib`), which the trade does not say either; the quote is the default."""
    symbol = _symbol(trade.get("pair"))
    return symbol.partition("/")[2] if "/" in symbol else ""


def apply_rest_orders(*, account_id: int, orders: Mapping[str, Mapping[str, Any]]) -> Applied:
    """Final states from QueryOrders (`{txid: order}`), for orders that closed while the
    socket was down (the snapshot lists open orders only)."""
    entries = []
    for txid, info in orders.items():
        descr = info.get("descr") or {}
        vol_exec = dec(info.get("vol_exec"))
        status = str(info.get("status") or "")
        entries.append(
            {
                "order_id": txid,
                "exec_type": "status",
                "order_status": {
                    "pending": "pending_new",
                    "open": "partially_filled" if vol_exec else "new",
                    "closed": "filled",
                    "canceled": "canceled",
                    "expired": "expired",
                }.get(status, ""),
                "symbol": descr.get("pair"),
                "side": descr.get("type"),
                "order_type": descr.get("ordertype"),
                "order_qty": info.get("vol"),
                "limit_price": descr.get("price") if descr.get("ordertype") != "market" else None,
                "cum_qty": info.get("vol_exec"),
                "cum_cost": info.get("cost"),
                "avg_price": info.get("price") if vol_exec else None,
                "cl_ord_id": info.get("cl_ord_id"),
                "order_userref": info.get("userref"),
                "timestamp": (
                    datetime.fromtimestamp(float(info["closetm"]), tz=UTC).isoformat()
                    if info.get("closetm")
                    else None
                ),
            }
        )
    return apply_executions(account_id=account_id, entries=entries, snapshot=False)


def orders_to_settle(*, account_id: int, open_ids: Iterable[str]) -> list[str]:
    """Order ids the record holds as open (or whose state it never learnt) that a fresh
    snapshot no longer lists: they closed while the socket was down."""
    still_open = set(open_ids)
    return sorted(
        txid
        for txid in ExchangeOrder.objects.filter(account_id=account_id)
        .filter(Q(status__in=OPEN_STATUSES) | Q(status=""))
        .values_list("txid", flat=True)
        if txid not in still_open
    )


def last_fill_at(*, account_id: int) -> datetime | None:
    fill = ExchangeFill.objects.filter(account_id=account_id).order_by("-executed_at").first()
    return fill.executed_at if fill is not None else None


def known_fills(*, account_id: int, trade_ids: Iterable[str]) -> set[str]:
    return set(
        ExchangeFill.objects.filter(
            account_id=account_id, trade_id__in=list(trade_ids)
        ).values_list("trade_id", flat=True)
    )


def live_since(*, account_id: int, channel: str) -> datetime | None:
    mark = StreamMark.objects.filter(account_id=account_id, channel=channel).first()
    return mark.live_since if mark is not None else None


def live_since_set(*, account_id: int, channel: str, at: datetime) -> None:
    StreamMark.objects.update_or_create(
        account_id=account_id, channel=channel, defaults={"live_since": at}
    )


def last_ledger_at(*, account_id: int) -> datetime | None:
    entry = LedgerEntry.objects.filter(account_id=account_id).order_by("-booked_at").first()
    return entry.booked_at if entry is not None else None


# -- balances --------------------------------------------------------------------------------


def _taker_fee(symbol: str) -> Decimal:
    pair = AssetPair.objects.filter(symbol=symbol).only("fees").first()
    if pair is not None and pair.fees:
        try:
            return Decimal(str(pair.fees[0][1])) / 100
        except (IndexError, TypeError, ArithmeticError):
            pass
    return HOLD_FEE_DEFAULT


def derived_holds(account_id: int) -> dict[str, Decimal]:
    """{asset: hold} from the account's open orders (module docstring)."""
    holds: dict[str, Decimal] = defaultdict(Decimal)
    fees: dict[str, Decimal] = {}
    for order in ExchangeOrder.objects.filter(account_id=account_id, status__in=OPEN_STATUSES):
        if order.vol is None or order.order_type in ORDER_TYPES_WITHOUT_HOLD:
            continue
        base, _, quote = order.pair.partition("/")
        remaining = max(order.vol - order.vol_exec, ZERO)
        if not remaining or not base or not quote:
            continue
        if order.side == "sell":
            holds[base] += remaining
        elif order.side == "buy" and order.price:
            fee = fees.setdefault(order.pair, _taker_fee(order.pair))
            holds[quote] += remaining * order.price * (1 + fee)
    return dict(holds)


def _recompute_holds(account_id: int) -> set[int]:
    """Write the derived spot holds; returns the ids of the rows that changed."""
    holds = derived_holds(account_id)
    changed: set[int] = set()
    now = timezone.now()
    rows = AccountBalance.objects.select_for_update().filter(
        account_id=account_id, wallet_type=WalletType.SPOT, wallet_id=WALLET_MAIN
    )
    seen: set[str] = set()
    for row in rows:
        seen.add(row.asset)
        hold = holds.get(row.asset, ZERO)
        if row.hold != hold:
            row.hold, row.updated_at = hold, now
            row.save(update_fields=["hold", "updated_at"])
            changed.add(row.pk)
            balance_hooks_on_commit(row)
    for asset, hold in holds.items():
        if asset not in seen and hold:
            row = AccountBalance.objects.create(
                account_id=account_id,
                asset=asset,
                wallet_type=WalletType.SPOT,
                wallet_id=WALLET_MAIN,
                balance=ZERO,
                hold=hold,
                source=BalanceSource.STREAM,
                updated_at=now,
            )
            changed.add(row.pk)
            balance_hooks_on_commit(row)
    return changed


def apply_balances_snapshot(*, account_id: int, data: Sequence[Mapping[str, Any]]) -> Applied:
    """Every wallet of every asset, as Kraken says now (wallets it no longer lists → zero)."""
    applied = Applied()
    now = timezone.now()
    values: dict[tuple[str, str, str], Decimal] = {}
    for item in data:
        asset = normalize_asset(str(item.get("asset") or ""))
        wallets = item.get("wallets")
        if not wallets:  # an older shape without wallets: the spot wallet's total
            values[(asset, WalletType.SPOT, WALLET_MAIN)] = dec(item.get("balance"))
            continue
        for wallet in wallets:
            key = (asset, str(wallet.get("type") or "spot"), str(wallet.get("id") or WALLET_MAIN))
            values[key] = values.get(key, ZERO) + dec(wallet.get("balance"))
    with transaction.atomic():
        existing = {
            (row.asset, row.wallet_type, row.wallet_id): row
            for row in AccountBalance.objects.select_for_update().filter(account_id=account_id)
        }
        for key, balance in values.items():
            row = existing.get(key)
            if row is None:
                row = AccountBalance.objects.create(
                    account_id=account_id,
                    asset=key[0],
                    wallet_type=key[1],
                    wallet_id=key[2],
                    balance=balance,
                    source=BalanceSource.STREAM,
                    updated_at=now,
                )
            elif row.balance != balance or row.source != BalanceSource.STREAM:
                row.balance, row.source, row.updated_at = balance, BalanceSource.STREAM, now
                row.save(update_fields=["balance", "source", "updated_at"])
            else:
                continue
            applied.balances.add(row.pk)
            balance_hooks_on_commit(row)
        for key, row in existing.items():
            if key not in values and row.balance:
                row.balance, row.source, row.updated_at = ZERO, BalanceSource.STREAM, now
                row.save(update_fields=["balance", "source", "updated_at"])
                applied.balances.add(row.pk)
                balance_hooks_on_commit(row)
        applied.balances |= _recompute_holds(account_id)
    return applied


def _ledger_entry(account_id: int, entry: Mapping[str, Any]) -> tuple[LedgerEntry, bool]:
    return LedgerEntry.objects.get_or_create(
        account_id=account_id,
        ledger_id=str(entry["ledger_id"]),
        defaults={
            "refid": str(entry.get("ref_id") or entry.get("refid") or "")[:64],
            "type": str(entry.get("type") or "")[:32],
            "subtype": str(entry.get("subtype") or "")[:32],
            "asset": normalize_asset(str(entry.get("asset") or ""))[:16],
            "amount": dec(entry.get("amount")),
            "fee": dec(entry.get("fee")),
            "balance": dec(entry.get("balance")) if entry.get("balance") is not None else None,
            "wallet_type": str(entry.get("wallet_type") or "")[:16],
            "wallet_id": str(entry.get("wallet_id") or "")[:16],
            "booked_at": when(entry.get("timestamp") or entry.get("time")) or timezone.now(),
        },
    )


def apply_balance_updates(*, account_id: int, entries: Sequence[Mapping[str, Any]]) -> Applied:
    """Ledger entries streamed on `balances`: each recorded once, and its wallet moved by it
    (`amount` less `fee`). Kraken's `balance` on an update is the asset's total across every
    wallet, so when the asset has no other wallet with funds it is the wallet's exact balance
    and corrects any drift. An entry already recorded changes nothing (applied before, or
    older than the snapshot after a reconnect)."""
    applied = Applied()
    now = timezone.now()
    with transaction.atomic():
        for entry in entries:
            if not entry.get("ledger_id"):
                continue
            ledger, created = _ledger_entry(account_id, entry)
            if not created:
                continue
            applied.ledger.add(ledger.pk)
            ledger_hooks_on_commit(ledger)
            rows = {
                (row.wallet_type, row.wallet_id): row
                for row in AccountBalance.objects.select_for_update().filter(
                    account_id=account_id, asset=ledger.asset
                )
            }
            wallet = (ledger.wallet_type or WalletType.SPOT, ledger.wallet_id or WALLET_MAIN)
            row = rows.get(wallet) or AccountBalance(
                account_id=account_id,
                asset=ledger.asset,
                wallet_type=wallet[0],
                wallet_id=wallet[1],
            )
            balance = row.balance + ledger.amount - ledger.fee
            others = any(other.balance for key, other in rows.items() if key != wallet)
            if entry.get("balance") is not None and not others:
                balance = dec(entry["balance"])
            row.balance, row.source, row.updated_at = balance, BalanceSource.STREAM, now
            row.save()
            applied.balances.add(row.pk)
            balance_hooks_on_commit(row)
    return applied


def apply_rest_ledgers(*, account_id: int, ledgers: Mapping[str, Mapping[str, Any]]) -> Applied:
    """Ledger entries from the Ledgers call (gap fill): recorded once; balances untouched
    (the balances snapshot that followed the reconnect is newer)."""
    applied = Applied()
    with transaction.atomic():
        for ledger_id, info in ledgers.items():
            wallet = str(info.get("wallet") or "")
            wallet_type, _, wallet_id = wallet.partition(" / ")
            ledger, created = _ledger_entry(
                account_id,
                {
                    "ledger_id": ledger_id,
                    "ref_id": info.get("refid"),
                    "type": info.get("type"),
                    "subtype": info.get("subtype"),
                    "asset": info.get("asset"),
                    "amount": info.get("amount"),
                    "fee": info.get("fee"),
                    "balance": info.get("balance"),
                    "wallet_type": wallet_type.strip().lower(),
                    "wallet_id": wallet_id.strip().lower(),
                    "time": info.get("time"),
                },
            )
            if created:
                applied.ledger.add(ledger.pk)
                ledger_hooks_on_commit(ledger)
    return applied
