"""Treasury reads of balances: per account and in total (available and held from the spot
wallet, Earn holdings from the Earn wallets, as apps.exchange.balances defines them), the value
in the organization's reporting currency with the price's age, and the total value over time
from exchange's BalanceSnapshot rows. Nothing here computes a balance of its own."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from django.utils import timezone

from apps.core import amounts
from apps.exchange.balances import AssetBalance, account_balances
from apps.exchange.models import BalanceSnapshot
from apps.market.conversion import ConversionError, Valuation, value_in
from apps.orgs.models import KrakenAccount, Organization

ZERO = Decimal(0)
# The range picker of the value chart: label -> how far back.
RANGES: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "1y": timedelta(days=365),
}
DEFAULT_RANGE = "7d"


@dataclass(frozen=True)
class Valued:
    balance: AssetBalance
    value: Decimal | None  # the total in the reporting currency
    age_seconds: float | None  # how old the price is
    problem: str = ""  # why there is no value (no price, a stale one)


@dataclass
class AccountView:
    account: KrakenAccount
    rows: list[Valued] = field(default_factory=list)

    @property
    def value(self) -> Decimal:
        return sum((row.value for row in self.rows if row.value is not None), ZERO)

    @property
    def complete(self) -> bool:
        return all(row.value is not None or row.balance.total == 0 for row in self.rows)

    @property
    def oldest_price_age(self) -> float | None:
        ages = [row.age_seconds for row in self.rows if row.age_seconds is not None]
        return max(ages) if ages else None

    @property
    def updated_at(self) -> datetime | None:
        times = [row.balance.updated_at for row in self.rows if row.balance.updated_at]
        return max(times) if times else None


@dataclass
class TreasuryView:
    currency: str
    accounts: list[AccountView]
    totals: list[Valued]  # per asset, every account together

    @property
    def value(self) -> Decimal:
        return sum((account.value for account in self.accounts), ZERO)

    @property
    def complete(self) -> bool:
        return all(account.complete for account in self.accounts)

    @property
    def oldest_price_age(self) -> float | None:
        ages = [a.oldest_price_age for a in self.accounts if a.oldest_price_age is not None]
        return max(ages) if ages else None


class Rates:
    """One valuation per asset for a whole page: value_in reads the market store (three Redis
    round trips) each time, and 20 accounts holding one asset share its rate."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self._cache: dict[str, Valuation | ConversionError] = {}

    def value(self, balance: AssetBalance) -> Valued:
        if balance.total == 0:
            return Valued(balance, ZERO, None)
        unit = self._cache.get(balance.asset)
        if unit is None:
            try:
                unit = value_in(asset=balance.asset, quantity=Decimal(1), currency=self.currency)
            except ConversionError as error:
                unit = error
            self._cache[balance.asset] = unit
        if isinstance(unit, ConversionError):
            return Valued(balance, None, None, unit.message)
        with localcontext() as context:
            context.prec = 80  # quantity x rate never rounds before the final quantize
            exact = balance.total * unit.rate
        value = amounts.quantize(exact, amounts.STORAGE_DECIMAL_PLACES)
        return Valued(balance, value, unit.age_seconds)


def _sum(balances: Iterable[AssetBalance]) -> list[AssetBalance]:
    spot: dict[str, Decimal] = defaultdict(Decimal)
    held: dict[str, Decimal] = defaultdict(Decimal)
    earn: dict[str, dict[str, Decimal]] = defaultdict(dict)
    newest: dict[str, datetime | None] = {}
    for b in balances:
        spot[b.asset] += b.spot
        held[b.asset] += b.held
        for wallet, amount in b.earn.items():
            earn[b.asset][wallet] = earn[b.asset].get(wallet, ZERO) + amount
        known = newest.get(b.asset)
        if known is None or (b.updated_at is not None and b.updated_at > known):
            newest[b.asset] = b.updated_at
    return [
        AssetBalance(
            asset=asset,
            spot=spot[asset],
            held=held[asset],
            earn=earn.get(asset, {}),
            updated_at=newest.get(asset),
        )
        for asset in sorted(spot.keys() | earn.keys())
    ]


def treasury_view(*, org: Organization) -> TreasuryView:
    """Every active account's balances with their value, and the per-asset totals."""
    currency = org.reporting_currency
    rates = Rates(currency)
    accounts = []
    every: list[AssetBalance] = []
    for account in KrakenAccount.objects.filter(org=org, archived_at__isnull=True).order_by(
        "kind", "label", "id"
    ):
        balances = account_balances(account=account)
        every.extend(balances)
        accounts.append(AccountView(account, [rates.value(b) for b in balances]))
    totals = [rates.value(b) for b in _sum(every)]
    return TreasuryView(currency=currency, accounts=accounts, totals=totals)


def account_view(*, account: KrakenAccount) -> AccountView:
    rates = Rates(account.org.reporting_currency)
    return AccountView(account, [rates.value(b) for b in account_balances(account=account)])


# --- value over time -------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    at: datetime
    value: Decimal
    complete: bool  # every wallet of the moment had a price in the reporting currency


def value_series(*, org: Organization, since: datetime) -> list[Point]:
    """The organization's total value at each snapshot moment since `since` (snapshots of one
    moment are grouped to the minute). Only prices in the reporting currency count; a wallet
    without one makes its point incomplete rather than wrong."""
    currency = org.reporting_currency
    rows = BalanceSnapshot.objects.filter(account__org=org, taken_at__gte=since).values_list(
        "taken_at", "quantity", "price", "price_currency"
    )
    values: dict[datetime, Decimal] = defaultdict(Decimal)
    complete: dict[datetime, bool] = {}
    for taken_at, quantity, price, price_currency in rows.iterator():
        minute = taken_at.replace(second=0, microsecond=0)
        complete.setdefault(minute, True)
        if price is None or price_currency != currency:
            if quantity:
                complete[minute] = False
            continue
        values[minute] += quantity * price
    return [
        Point(at, amounts.quantize(values.get(at, ZERO), 8), complete[at])
        for at in sorted(complete)
    ]


def value_series_csv(*, org: Organization, points: list[Point]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time (UTC)", f"total value ({org.reporting_currency})", "complete"])
    for point in points:
        writer.writerow([point.at.astimezone(UTC).isoformat(), f"{point.value:f}", point.complete])
    return out.getvalue()


@dataclass(frozen=True)
class DayChange:
    value: Decimal  # the total now
    start: Decimal | None  # the total at the start of the business day (from snapshots)

    @property
    def change(self) -> Decimal | None:
        return None if self.start is None else self.value - self.start


def total_and_change_today(*, org: Organization) -> tuple[TreasuryView, DayChange]:
    """The total now, and what it was when the organization's business day began (the last
    snapshot before, else the first of the day): the home panel's "change today"."""
    from zoneinfo import ZoneInfo

    view = treasury_view(org=org)
    zone = ZoneInfo(org.business_timezone or "UTC")
    local = timezone.now().astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    points = value_series(org=org, since=day_start - timedelta(days=1))
    before = [p for p in points if p.at <= day_start and p.complete]
    during = [p for p in points if p.at > day_start and p.complete]
    start = before[-1].value if before else (during[0].value if during else None)
    return view, DayChange(value=view.value, start=start)
