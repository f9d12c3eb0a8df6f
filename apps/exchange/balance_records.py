"""Writing exchange's `AccountBalance` rows from what Kraken says (REST refresh or stream).

REST (services.balances_refresh): BalanceEx gives the spot wallet and its hold (`hold_trade`);
its deprecated `.F` (and other suffixed) assets are ignored whichever shape Kraken speaks
(Kraken dropped them on 13 Nov 2025; the sandbox keeps them behind --legacy-f-balances): the
Earn wallets come from Earn/Allocations, each strategy's `amount_allocated.total` in the wallet
its lock type names (models.EARN_WALLET_BY_LOCK).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.exchange.models import (
    EARN_WALLET_BY_LOCK,
    WALLET_MAIN,
    AccountBalance,
    BalanceSource,
    WalletType,
)
from apps.kraken.naming import WALLET_SPOT, split_balance_key
from apps.orgs.models import KrakenAccount

ZERO = Decimal(0)
Wallet = tuple[str, str, str]  # (asset, wallet_type, wallet_id)


def dec(value: Any) -> Decimal:
    """Kraken's number (Decimal, str, int) as Decimal; junk is zero."""
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ZERO


def spot_from_balance_ex(answer: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """{asset: (balance, hold)} of the spot wallet from BalanceEx, `.F` entries ignored."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for name, entry in answer.items():
        asset, wallet = split_balance_key(str(name))
        if wallet != WALLET_SPOT:
            continue  # `.F` Earn (deprecated), `.B`, `.S`, `.M`, `.T`: not the spot wallet
        if isinstance(entry, Mapping):
            balance, hold = dec(entry.get("balance")), dec(entry.get("hold_trade"))
        else:  # Balance's plain shape
            balance, hold = dec(entry), ZERO
        old_balance, old_hold = out.get(asset, (ZERO, ZERO))
        out[asset] = (old_balance + balance, old_hold + hold)
    return out


def earn_from_allocations(
    answer: Mapping[str, Any], lock_by_strategy: Mapping[str, str]
) -> dict[tuple[str, str], Decimal]:
    """{(asset, Earn wallet id): amount} from Earn/Allocations: each strategy's total in the
    wallet its lock type names; a lock type not in the table keeps its own name (or
    "allocated" when the strategy is unknown) — never spendable either way."""
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for item in answer.get("items") or []:
        asset, _ = split_balance_key(str(item.get("native_asset") or ""))
        total = (item.get("amount_allocated") or {}).get("total") or {}
        amount = dec(total.get("native") if isinstance(total, Mapping) else total)
        lock = lock_by_strategy.get(str(item.get("strategy_id")), "")
        wallet_id = EARN_WALLET_BY_LOCK.get(lock, lock or "allocated")
        out[(asset, wallet_id)] += amount
    return dict(out)


def _upsert(
    account: KrakenAccount,
    values: Mapping[Wallet, tuple[Decimal, Decimal]],
    *,
    source: str,
    zero_others: Iterable[str],
) -> list[AccountBalance]:
    """Write each wallet's (balance, hold); rows of the `zero_others` wallet types that the
    answer no longer lists become zero (Kraken omits emptied wallets)."""
    now = timezone.now()
    written: list[AccountBalance] = []
    existing = {
        (row.asset, row.wallet_type, row.wallet_id): row
        for row in AccountBalance.objects.select_for_update().filter(account=account)
    }
    for wallet, (balance, hold) in values.items():
        row = existing.get(wallet)
        asset, wallet_type, wallet_id = wallet
        if row is None:
            row = AccountBalance.objects.create(
                account=account,
                asset=asset,
                wallet_type=wallet_type,
                wallet_id=wallet_id,
                balance=balance,
                hold=hold,
                source=source,
                updated_at=now,
            )
        elif row.balance != balance or row.hold != hold or row.source != source:
            row.balance, row.hold, row.source, row.updated_at = balance, hold, source, now
            row.save(update_fields=["balance", "hold", "source", "updated_at"])
        written.append(row)
    types = set(zero_others)
    for wallet, row in existing.items():
        if wallet in values or row.wallet_type not in types:
            continue
        if row.balance or row.hold:
            row.balance, row.hold, row.source, row.updated_at = ZERO, ZERO, source, now
            row.save(update_fields=["balance", "hold", "source", "updated_at"])
            written.append(row)
    return written


def rest_balances_write(
    *,
    account: KrakenAccount,
    spot: Mapping[str, tuple[Decimal, Decimal]],
    earn: Mapping[tuple[str, str], Decimal] | None,
) -> list[AccountBalance]:
    """Write a REST refresh (source=rest). `earn` None: Allocations could not be read, so the
    Earn rows are left as they were. Returns the rows that changed or were confirmed."""
    values: dict[Wallet, tuple[Decimal, Decimal]] = {
        (asset, WalletType.SPOT, WALLET_MAIN): pair for asset, pair in spot.items()
    }
    types = [WalletType.SPOT]
    if earn is not None:
        types.append(WalletType.EARN)
        for (asset, wallet_id), amount in earn.items():
            values[(asset, WalletType.EARN, wallet_id)] = (amount, ZERO)
    with transaction.atomic():
        return _upsert(account, values, source=BalanceSource.REST, zero_others=types)
