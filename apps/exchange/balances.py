"""Balances and "spendable": THE one definition every app uses (issue 10 §2, §6).

Kraken's WS v2 `balances` channel reports, per asset, the total and its wallets: the spot
wallet (`spot`/`main`) and one Earn wallet per lock type (`earn`/`flex` auto-earn,
`flexible` instant, `bonded`, `locked` timed, ...). Exchange keeps one `AccountBalance` row
per wallet (models.py), written by the private stream or, without it, by
`services.balances_refresh` (BalanceEx for the spot wallet and its holds, Earn/Allocations for
the Earn wallets; the deprecated `.F` assets are ignored).

- **total** of an asset = spot + every Earn wallet. Kraken's `balances` totals already
  include Earn: nothing downstream adds allocations on top.
- **spendable** = spot balance - hold (what open orders reserve) + auto-earn `flex` funds,
  which Kraken draws on when a trade or withdrawal needs more than the spot wallet. Bonded,
  instant (`flexible`), timed (`locked`) and other allocated Earn funds are NOT spendable:
  they must be deallocated first. Never below zero.

Trading (order checks), treasury (withdrawals, transfers, sweeps) and staking (allocations)
call `spendable()`; pages call `account_balances()`. None computes its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from apps.exchange.models import WALLET_FLEX, AccountBalance, WalletType
from apps.kraken.naming import normalize_asset
from apps.orgs.models import KrakenAccount

ZERO = Decimal(0)


@dataclass(frozen=True)
class AssetBalance:
    """One asset of one account, every wallet together."""

    asset: str  # the portal's name (BTC, USD)
    spot: Decimal  # the spot wallet's balance (holds included)
    held: Decimal  # reserved by open orders
    earn: dict[str, Decimal] = field(default_factory=dict)  # Earn wallet id -> balance
    updated_at: datetime | None = None  # the newest of its rows
    source: str = ""  # where the newest row came from: stream | rest

    @property
    def available(self) -> Decimal:
        """The spot wallet less holds (may be negative when auto-earn covers an order)."""
        return self.spot - self.held

    @property
    def flex(self) -> Decimal:
        return self.earn.get(WALLET_FLEX, ZERO)

    @property
    def earn_total(self) -> Decimal:
        return sum(self.earn.values(), ZERO)

    @property
    def locked_earn(self) -> Decimal:
        """Earn funds that are not spendable (everything but auto-earn)."""
        return self.earn_total - self.flex

    @property
    def total(self) -> Decimal:
        """Spot plus every Earn wallet: Kraken's `balances` total for the asset."""
        return self.spot + self.earn_total

    @property
    def spendable(self) -> Decimal:
        return max(self.available + self.flex, ZERO)


def _fold(rows: list[AccountBalance]) -> dict[str, AssetBalance]:
    spot: dict[str, Decimal] = defaultdict(Decimal)
    held: dict[str, Decimal] = defaultdict(Decimal)
    earn: dict[str, dict[str, Decimal]] = defaultdict(dict)
    newest: dict[str, AccountBalance] = {}
    for row in rows:
        if row.wallet_type == WalletType.SPOT:
            spot[row.asset] += row.balance
            held[row.asset] += row.hold
        else:
            earn[row.asset][row.wallet_id] = earn[row.asset].get(row.wallet_id, ZERO) + row.balance
        if row.asset not in newest or row.updated_at > newest[row.asset].updated_at:
            newest[row.asset] = row
    return {
        asset: AssetBalance(
            asset=asset,
            spot=spot.get(asset, ZERO),
            held=held.get(asset, ZERO),
            earn=dict(sorted(earn.get(asset, {}).items())),
            updated_at=newest[asset].updated_at,
            source=newest[asset].source,
        )
        for asset in sorted(newest)
    }


def account_balances(*, account: KrakenAccount) -> list[AssetBalance]:
    """Every asset the account holds (or held: zero rows stay), by asset name."""
    rows = list(AccountBalance.objects.filter(account=account))
    return list(_fold(rows).values())


def asset_balance(*, account: KrakenAccount, asset: str) -> AssetBalance:
    """One asset (any Kraken spelling: XXBT, XBT, BTC); zeros when the account has none."""
    name = normalize_asset(asset)
    rows = list(AccountBalance.objects.filter(account=account, asset=name))
    return _fold(rows).get(name, AssetBalance(asset=name, spot=ZERO, held=ZERO))


def spendable(*, account: KrakenAccount, asset: str) -> Decimal:
    """What the account can spend of `asset` now: spot - hold + auto-earn `flex` (never < 0).

    The one definition (module docstring). Bonded and allocated Earn funds are excluded.
    """
    return asset_balance(account=account, asset=asset).spendable
