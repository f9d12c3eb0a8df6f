"""Stream hooks: the business apps (trading, funding, staking) react to what exchange learns
of an account's orders, fills, balances and ledger, without apps.exchange importing them.

Each registers in its AppConfig.ready():

    stream_hook_register(on_order=..., on_fill=..., on_balance=..., on_ledger=...)
    streams_tick_register(refresh_dead_mans_switch)  # called with a KrakenAccount

- `on_order(order: ExchangeOrder, placed_by_portal: bool)`: an order's record changed
  (status, vol_exec, avg_price, cost, fee). `placed_by_portal` is False for an external order
  (another program on the account, Kraken's own pages).
- `on_fill(fill: ExchangeFill, placed_by_portal: bool)`: a fill was recorded (once per trade).
- `on_balance(balance: AccountBalance)`: a wallet's balance or hold changed (stream or REST).
- `on_ledger(entry: LedgerEntry)`: a ledger entry was recorded (once per ledger id).

Hooks run after the rows have committed (never on a state that could roll back), each in its
own transaction; one that raises is logged and changes nothing already recorded.

A tick hook is called by the active streams process every STREAMS_TICK_SECONDS (a few seconds)
for each account it holds a connection for, outside any transaction: trading uses it to
refresh the dead man's switch (CancelAllOrdersAfter) while armed. Keep it quick; it runs in
the streams process, one account after another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction

from apps.exchange.models import AccountBalance, ExchangeFill, ExchangeOrder, LedgerEntry
from apps.orgs.models import KrakenAccount

logger = logging.getLogger(__name__)

OrderHook = Callable[[ExchangeOrder, bool], None]
FillHook = Callable[[ExchangeFill, bool], None]
BalanceHook = Callable[[AccountBalance], None]
LedgerHook = Callable[[LedgerEntry], None]
TickHook = Callable[[KrakenAccount], None]


@dataclass(frozen=True)
class StreamHookSet:
    on_order: OrderHook | None = None
    on_fill: FillHook | None = None
    on_balance: BalanceHook | None = None
    on_ledger: LedgerHook | None = None


_hooks: list[StreamHookSet] = []
_ticks: list[TickHook] = []


def stream_hook_register(
    *,
    on_order: OrderHook | None = None,
    on_fill: FillHook | None = None,
    on_balance: BalanceHook | None = None,
    on_ledger: LedgerHook | None = None,
) -> None:
    """Call these when the streams (or a REST refresh) record an account's events."""
    _hooks.append(
        StreamHookSet(
            on_order=on_order, on_fill=on_fill, on_balance=on_balance, on_ledger=on_ledger
        )
    )


def streams_tick_register(hook: TickHook) -> None:
    """Call `hook(account)` every few seconds per account the active streams process holds."""
    _ticks.append(hook)


def stream_hooks_clear() -> None:
    """For tests: forget every stream and tick hook."""
    _hooks.clear()
    _ticks.clear()


@contextmanager
def stream_hooks_isolated() -> Iterator[None]:
    """For tests: hooks registered inside are forgotten afterwards; the apps' own stay."""
    saved_hooks, saved_ticks = list(_hooks), list(_ticks)
    try:
        yield
    finally:
        _hooks[:] = saved_hooks
        _ticks[:] = saved_ticks


def _call(hook: Callable[..., None], *args: Any) -> None:
    try:
        with transaction.atomic():
            hook(*args)
    except Exception:
        logger.exception("exchange: stream hook %r failed", hook)


def _order_run(hook: OrderHook, order_id: int, placed_by_portal: bool) -> None:
    order = ExchangeOrder.objects.select_related("account", "operation").filter(pk=order_id).first()
    if order is not None:
        _call(hook, order, placed_by_portal)


def _fill_run(hook: FillHook, fill_id: int, placed_by_portal: bool) -> None:
    fill = ExchangeFill.objects.select_related("account", "order").filter(pk=fill_id).first()
    if fill is not None:
        _call(hook, fill, placed_by_portal)


def _balance_run(hook: BalanceHook, balance_id: int) -> None:
    balance = AccountBalance.objects.select_related("account").filter(pk=balance_id).first()
    if balance is not None:
        _call(hook, balance)


def _ledger_run(hook: LedgerHook, entry_id: int) -> None:
    entry = LedgerEntry.objects.select_related("account").filter(pk=entry_id).first()
    if entry is not None:
        _call(hook, entry)


def order_hooks_on_commit(order: ExchangeOrder, *, placed_by_portal: bool) -> None:
    for hooks in _hooks:
        if hooks.on_order is not None:
            transaction.on_commit(partial(_order_run, hooks.on_order, order.pk, placed_by_portal))


def fill_hooks_on_commit(fill: ExchangeFill, *, placed_by_portal: bool) -> None:
    for hooks in _hooks:
        if hooks.on_fill is not None:
            transaction.on_commit(partial(_fill_run, hooks.on_fill, fill.pk, placed_by_portal))


def balance_hooks_on_commit(balance: AccountBalance) -> None:
    for hooks in _hooks:
        if hooks.on_balance is not None:
            transaction.on_commit(partial(_balance_run, hooks.on_balance, balance.pk))


def ledger_hooks_on_commit(entry: LedgerEntry) -> None:
    for hooks in _hooks:
        if hooks.on_ledger is not None:
            transaction.on_commit(partial(_ledger_run, hooks.on_ledger, entry.pk))


def tick_hooks_run(account: KrakenAccount) -> None:
    """Called by the streams process; each hook's failure is logged, never fatal."""
    for hook in _ticks:
        try:
            hook(account)
        except Exception:
            logger.exception(
                "exchange: streams tick hook %r failed for account %s", hook, account.pk
            )
