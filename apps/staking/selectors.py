"""Staking reads for the pages: the catalogue beside the organization's allocations, holdings per
strategy and account with their value, the requests and the rewards over time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.http import Http404

from apps.market.conversion import ConversionError, value_in
from apps.orgs.models import KrakenAccount, Organization
from apps.staking import earn
from apps.staking.models import FINISHED, RewardSnapshot, StakeRequest

ZERO = Decimal(0)
SORTS = {
    "apr": lambda s: (-s.apr_high, s.asset),
    "asset": lambda s: (s.asset, -s.apr_high),
    "minimum": lambda s: (s.min_allocation, s.asset),
    "lock": lambda s: (s.lock_type, s.asset),
}
LOCK_TYPES = (
    ("instant", "Flexible"),
    ("bonded", "Bonded"),
    ("timed", "Locked"),
    ("flex", "Auto-earn"),
)


def accounts(*, org: Organization) -> QuerySet[KrakenAccount]:
    return KrakenAccount.objects.filter(org=org, archived_at__isnull=True).order_by(
        "kind", "label", "id"
    )


def account_get(*, org: Organization, pk: object) -> KrakenAccount:
    try:
        return accounts(org=org).get(pk=int(str(pk)))
    except (KrakenAccount.DoesNotExist, ValueError):
        raise Http404("No such account.") from None


def _price(asset: str, currency: str) -> Decimal | None:
    try:
        return value_in(asset=asset, quantity=Decimal(1), currency=currency).rate
    except ConversionError:
        return None


@dataclass
class Position:
    """One account's holding in one strategy, with what the portal knows about the strategy."""

    account: KrakenAccount
    holding: earn.Holding
    strategy: earn.Strategy | None
    price: Decimal | None  # one unit in the reporting currency

    def value(self, amount: Decimal) -> Decimal | None:
        return amount * self.price if self.price is not None else None

    @property
    def total_value(self) -> Decimal | None:
        return self.value(self.holding.total)

    @property
    def rewarded_value(self) -> Decimal | None:
        return self.value(self.holding.rewarded)

    @property
    def yearly_yield(self) -> Decimal | None:
        """Estimated: the earning amount at the mid of Kraken's APR estimate (native)."""
        if self.strategy is None:
            return None
        return self.holding.allocated * self.strategy.apr_mid / 100

    @property
    def yearly_yield_value(self) -> Decimal | None:
        yearly = self.yearly_yield
        return self.value(yearly) if yearly is not None else None


@dataclass
class AccountEarn:
    account: KrakenAccount
    positions: list[Position] = field(default_factory=list)
    error: str = ""


@dataclass
class Overview:
    currency: str
    accounts: list[AccountEarn]

    @property
    def positions(self) -> list[Position]:
        return [p for a in self.accounts for p in a.positions]

    def _sum(self, values: list[Decimal | None]) -> Decimal | None:
        if any(v is None for v in values):
            return None  # a total that leaves an unpriced holding out would be wrong
        return sum((v for v in values if v is not None), ZERO)

    @property
    def total_value(self) -> Decimal | None:
        return self._sum([p.total_value for p in self.positions])

    @property
    def rewarded_value(self) -> Decimal | None:
        return self._sum([p.rewarded_value for p in self.positions])

    @property
    def yearly_yield_value(self) -> Decimal | None:
        return self._sum([p.yearly_yield_value for p in self.positions])

    @property
    def by_strategy(self) -> list[dict[str, object]]:
        """Per strategy across accounts: native amounts (one asset per strategy)."""
        rows: dict[str, dict[str, object]] = {}
        for p in self.positions:
            h = p.holding
            row = rows.setdefault(
                h.strategy_id,
                {
                    "strategy_id": h.strategy_id,
                    "asset": h.asset,
                    "strategy": p.strategy,
                    "allocated": ZERO,
                    "pending": ZERO,
                    "bonding": ZERO,
                    "unbonding": ZERO,
                    "exit_queue": ZERO,
                    "total": ZERO,
                    "rewarded": ZERO,
                    "value": ZERO,
                },
            )
            for name in ("allocated", "pending", "bonding", "unbonding", "exit_queue", "total"):
                row[name] = row[name] + getattr(h, name)  # type: ignore[operator]
            row["rewarded"] = row["rewarded"] + h.rewarded  # type: ignore[operator]
            value = p.total_value
            row["value"] = (
                None if value is None or row["value"] is None else row["value"] + value  # type: ignore[operator]
            )
        return sorted(rows.values(), key=lambda r: str(r["asset"]))


def overview(*, org: Organization) -> Overview:
    """Every account's Earn holdings, priced in the organization's reporting currency."""
    currency = org.reporting_currency
    prices: dict[str, Decimal | None] = {}
    result = []
    for account in accounts(org=org):
        entry = AccountEarn(account=account)
        try:
            holdings = earn.allocations(account)
            catalogue = {s.id: s for s in earn.strategies(account)}
        except earn.EarnUnavailable as error:
            entry.error = error.message
            result.append(entry)
            continue
        for holding in sorted(holdings.values(), key=lambda h: (h.asset, h.strategy_id)):
            if holding.asset not in prices:
                prices[holding.asset] = _price(holding.asset, currency)
            entry.positions.append(
                Position(
                    account=account,
                    holding=holding,
                    strategy=catalogue.get(holding.strategy_id),
                    price=prices[holding.asset],
                )
            )
        result.append(entry)
    return Overview(currency=currency, accounts=result)


@dataclass
class CatalogueRow:
    strategy: earn.Strategy
    held: dict[int, earn.Holding]  # account id → holding

    @property
    def org_total(self) -> Decimal:
        return sum((h.total for h in self.held.values()), ZERO)


@dataclass
class Catalogue:
    account: KrakenAccount | None
    accounts: list[KrakenAccount]
    rows: list[CatalogueRow]
    assets: list[str]
    error: str = ""


def catalogue(
    *,
    org: Organization,
    account: KrakenAccount | None,
    asset: str = "",
    lock_type: str = "",
    allocatable_only: bool = False,
    sort: str = "apr",
) -> Catalogue:
    """Kraken's strategies as offered to `account` (its tier decides what it may allocate),
    filtered and sorted, with what each of the organization's accounts holds in each."""
    all_accounts = list(accounts(org=org))
    account = account or (all_accounts[0] if all_accounts else None)
    if account is None:
        return Catalogue(account=None, accounts=[], rows=[], assets=[], error="")
    try:
        offered = earn.strategies(account)
    except earn.EarnUnavailable as error:
        return Catalogue(account, all_accounts, [], [], error=error.message)
    held: dict[str, dict[int, earn.Holding]] = defaultdict(dict)
    for other in all_accounts:
        try:
            for sid, holding in earn.allocations(other).items():
                held[sid][other.pk] = holding
        except earn.EarnUnavailable:
            continue
    assets = sorted({s.asset for s in offered})
    chosen = [
        s
        for s in offered
        if (not asset or s.asset == asset)
        and (not lock_type or s.lock_type == lock_type)
        and (not allocatable_only or s.allocatable)
    ]
    chosen.sort(key=SORTS.get(sort, SORTS["apr"]))
    rows = [CatalogueRow(strategy=s, held=held.get(s.id, {})) for s in chosen]
    return Catalogue(account=account, accounts=all_accounts, rows=rows, assets=assets)


def requests_open(*, org: Organization) -> QuerySet[StakeRequest]:
    return (
        StakeRequest.objects.filter(org=org)
        .exclude(status__in=FINISHED)
        .select_related("account", "requested_by", "operation")
        .order_by("created_at", "id")
    )


def requests_recent(*, org: Organization, limit: int = 20) -> QuerySet[StakeRequest]:
    return (
        StakeRequest.objects.filter(org=org, status__in=FINISHED)
        .select_related("account", "requested_by", "operation")
        .order_by("-finished_at", "-id")[:limit]
    )


def request_get(*, org: Organization, pk: object) -> StakeRequest:
    try:
        return StakeRequest.objects.select_related("account", "org").get(org=org, pk=int(str(pk)))
    except (StakeRequest.DoesNotExist, ValueError):
        raise Http404("No such request.") from None


def queue_position(row: StakeRequest) -> int:
    """1 for the next to go to Kraken."""
    return StakeRequest.objects.filter(
        account_id=row.account_id,
        strategy_id=row.strategy_id,
        status=StakeRequest.Status.QUEUED,
        created_at__lte=row.created_at,
    ).count()


@dataclass(frozen=True)
class RewardPoint:
    taken_at: datetime
    value: Decimal  # rewards so far, in the currency
    unpriced: bool  # some holding had no price then (its rewards are left out)


def reward_series(*, org: Organization, limit: int = 500) -> list[RewardPoint]:
    """The organization's rewards so far at each snapshot time, in the reporting currency,
    recomputed from quantities and the prices stored with them."""
    currency = org.reporting_currency
    snaps = RewardSnapshot.objects.filter(account__org=org).order_by("-taken_at", "-id")[
        : limit * 20
    ]
    by_time: dict[datetime, list[RewardSnapshot]] = defaultdict(list)
    for snap in snaps:
        by_time[snap.taken_at.replace(microsecond=0)].append(snap)
    # Each snapshot time covers the accounts it was taken for; carry the latest figure of the
    # others forward so the total does not dip between accounts' snapshots.
    latest: dict[tuple[int, str], RewardSnapshot] = {}
    points = []
    for when in sorted(by_time)[-limit:]:
        for snap in by_time[when]:
            latest[(snap.account_id, snap.strategy_id)] = snap
        value = ZERO
        unpriced = False
        for snap in latest.values():
            if snap.price is None or snap.currency != currency:
                unpriced = True
                continue
            value += snap.rewarded * snap.price
        points.append(RewardPoint(taken_at=when, value=value, unpriced=unpriced))
    return points


def chart_points(points: list[RewardPoint], *, width: int = 600, height: int = 160) -> str:
    """SVG polyline points for the rewards chart (server-drawn: it works without JavaScript)."""
    if len(points) < 2:
        return ""
    t0 = points[0].taken_at.timestamp()
    span = max(points[-1].taken_at.timestamp() - t0, 1.0)
    top = max((p.value for p in points), default=ZERO) or Decimal(1)
    coords = []
    for p in points:
        x = (p.taken_at.timestamp() - t0) / span * width
        y = height - float(p.value / top) * (height - 10) - 5
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)
