"""P&L per account and pair (issue 11 §5), from exchange's record of every fill on the
organization's accounts, in the organization's reporting currency. Decimal throughout.

How it is counted:
- FIFO lots per account and base asset. A buy first closes the oldest short lots, then opens a
  long lot; a sell first closes the oldest long lots, then opens a short. Each close realises
  (sell price - buy price) x quantity, booked to the closing fill's pair, at its time, and to the
  member whose order closed the lot: the member who placed it through the portal, or
  "external" for an order placed elsewhere (Kraken's site, another program).
- Positions held before the portal saw the account's trades are opening lots
  (pnl_models.OpeningLot), opened before every fill at what they were worth when imported, so
  selling them is a disposal with a cost and not a short.
- Prices are converted to the reporting currency with the live rate of the pair's quote
  (apps.market.conversion.value_in): exact when the quote is the reporting currency, the most
  common case; for another quote the portal has no historical rates, so past fills are valued at
  today's rate (the page says so).
- Fees (a list of asset and quantity per fill) are valued at the fill's price when paid in the
  pair's base or quote asset, else at the asset's live rate, and subtracted from the net.
- Unrealised P&L values each lot still open against the live mid of its base asset.
- Realised P&L and fees count the fills inside the chosen window [since, until); the lots are
  always built from the whole history, since a lot closed today may have opened a year ago.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.core.cache import cache as shared_cache
from django.db.models import BooleanField, Case, ExpressionWrapper, F, JSONField, Q, Value, When
from django.utils import timezone

from apps.exchange.models import ExchangeFill
from apps.kraken.naming import normalize_asset, pair_symbol
from apps.market.conversion import ConversionError, value_in
from apps.orgs.business_day import business_day_bounds
from apps.orgs.models import KrakenAccount, Organization
from apps.trading.pnl_models import OpeningLot

EXTERNAL = "external"
ZERO = Decimal(0)
OPENING = "opening"

# A rate of one unit of an asset in the reporting currency, or None with the reason.
type RateSource = Callable[[str], Decimal]


class FillFact(NamedTuple):
    """What the walk needs of one fill, read as a plain row (values_list): a walk reads
    100,000 of them, so nothing is built per fill that is not needed. Whether the fill falls in
    the window is decided by the database, and its fees are read only when it does."""

    account_id: int
    pair: str  # as stored; normalised by the walk
    side: str
    price: Decimal
    qty: Decimal
    fees: Any  # [{"asset": ..., "qty": ...}], or None outside the window
    inside: bool  # executed in [since, until)
    member_id: int | None  # the requester of the portal order behind it, None if external


@dataclass(slots=True)
class Lot:
    qty: Decimal  # > 0 long, < 0 short
    unit_cost: Decimal  # in the reporting currency
    pair: str  # the pair that opened it (or "<asset> opening")


@dataclass
class Line:
    """One account and pair's figures, in the reporting currency."""

    account_id: int
    pair: str
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    position: Decimal = ZERO  # base asset still held (short: negative)
    cost: Decimal = ZERO  # what the position cost
    unrealised: Decimal | None = ZERO  # None: no live price
    mid: Decimal | None = None
    fills: int = 0
    asset: str = ""  # the base asset of the position, valued at its live mid

    @property
    def net(self) -> Decimal | None:
        if self.unrealised is None:
            return None
        return self.realised + self.unrealised - self.fees


@dataclass
class Report:
    currency: str
    since: datetime | None
    until: datetime | None
    lines: list[Line]
    by_member: dict[int | str, Decimal]  # user id or EXTERNAL -> realised in the window
    problems: list[str] = field(default_factory=list)  # why something could not be valued
    converted: bool = False  # some fills were in another quote than the reporting currency

    @property
    def realised(self) -> Decimal:
        return sum((line.realised for line in self.lines), ZERO)

    @property
    def fees(self) -> Decimal:
        return sum((line.fees for line in self.lines), ZERO)

    @property
    def unrealised(self) -> Decimal | None:
        values = [line.unrealised for line in self.lines]
        if any(value is None for value in values):
            return None
        return sum((value for value in values if value is not None), ZERO)

    @property
    def net(self) -> Decimal | None:
        unrealised = self.unrealised
        return None if unrealised is None else self.realised + unrealised - self.fees


class Unvalued(Exception):
    """An asset has no live rate in the reporting currency."""


def live_rates(currency: str) -> tuple[RateSource, list[str]]:
    """A rate source from the market feed's live mids (cached for one report), and the list it
    appends each refusal's reason to."""
    known: dict[str, Decimal | None] = {}
    problems: list[str] = []

    def rate(asset: str) -> Decimal:
        if asset not in known:
            try:
                known[asset] = value_in(asset=asset, quantity=Decimal(1), currency=currency).rate
            except ConversionError as error:
                known[asset] = None
                problems.append(error.message)
        found = known[asset]
        if found is None:
            raise Unvalued(asset)
        return found

    return rate, problems


@cache
def _split(pair: str) -> tuple[str, str, str]:
    """(symbol, base, quote); cached, as a walk meets the same few spellings 100,000 times."""
    symbol = pair_symbol(pair)
    base, _, quote = symbol.partition("/")
    return symbol, base, quote


@cache
def _asset(name: str) -> str:
    return normalize_asset(name)


def _fee_value(
    fees: Any, *, base: str, quote: str, price: Decimal, quote_rate: Decimal, rate: RateSource
) -> Decimal:
    total = ZERO
    for fee in fees if isinstance(fees, list) else []:
        asset = _asset(str(fee.get("asset", "")))
        qty = Decimal(str(fee.get("qty", "0")))
        if not qty:
            continue
        if asset == quote:
            total += qty * quote_rate
        elif asset == base:
            total += qty * price * quote_rate
        else:
            total += qty * rate(asset)
    return total


def fifo(
    *,
    fills: Iterable[FillFact],
    opening: Sequence[OpeningLot],
    currency: str,
    rate: RateSource,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """The walk itself, over fills in time order; `rate(asset)` is the value of one unit of
    `asset` in `currency` (raise Unvalued when there is none)."""
    books: dict[tuple[int, str], deque[Lot]] = defaultdict(deque)
    lines: dict[tuple[int, str], Line] = {}
    by_member: dict[int | str, Decimal] = defaultdict(lambda: ZERO)
    problems: list[str] = []
    converted = False

    def line(account_id: int, pair: str) -> Line:
        key = (account_id, pair)
        if key not in lines:
            lines[key] = Line(account_id=account_id, pair=pair)
        return lines[key]

    for held in opening:
        asset = normalize_asset(held.asset)
        label = f"{asset} {OPENING}"
        cost = held.unit_cost
        if normalize_asset(held.currency) != currency:
            # Imported when the organization reported in another currency.
            try:
                cost = held.unit_cost * rate(normalize_asset(held.currency))
            except Unvalued as missing:
                problems.append(f"The opening {asset} cannot be valued: no live {missing} rate.")
                continue
        books[(held.account_id, asset)].append(Lot(qty=held.qty, unit_cost=cost, pair=label))
        line(held.account_id, label)

    for fill in fills:
        try:
            symbol, base, quote = _split(fill.pair)
        except ValueError:
            problems.append(f"A fill on {fill.pair!r} names no pair the portal knows.")
            continue
        try:
            quote_rate = Decimal(1) if quote == currency else rate(quote)
            fee = _fee_value(
                fill.fees,
                base=base,
                quote=quote,
                price=fill.price,
                quote_rate=quote_rate,
                rate=rate,
            )
        except Unvalued as missing:
            problems.append(
                f"Fills on {symbol} cannot be valued in {currency}: no live {missing} rate."
            )
            continue
        converted = converted or quote != currency
        price = fill.price * quote_rate
        inside = fill.inside
        current = line(fill.account_id, symbol)
        if inside:
            current.fees += fee
            current.fills += 1
        book = books[(fill.account_id, base)]
        sign = Decimal(1) if fill.side == "buy" else Decimal(-1)
        remaining = fill.qty
        realised = ZERO
        # Close lots of the other direction first, oldest first.
        while remaining > 0 and book and (book[0].qty * sign) < 0:
            lot = book[0]
            closed = min(remaining, abs(lot.qty))
            # A long lot closed by a sell gains (price - cost); a short closed by a buy gains
            # (cost - price).
            realised += (price - lot.unit_cost) * closed * (-sign)
            lot.qty += closed * sign
            remaining -= closed
            if lot.qty == 0:
                book.popleft()
        if remaining > 0:
            book.append(Lot(qty=remaining * sign, unit_cost=price, pair=symbol))
        if inside and realised:
            current.realised += realised
            by_member[fill.member_id if fill.member_id is not None else EXTERNAL] += realised

    for (account_id, asset), book in books.items():
        for lot in book:
            holding = line(account_id, lot.pair)
            holding.asset = asset
            holding.position += lot.qty
            holding.cost += lot.qty * lot.unit_cost

    kept = [
        value
        for value in lines.values()
        if value.fills or value.position or value.realised or value.fees
    ]
    kept.sort(key=lambda value: (value.account_id, value.pair))
    return Report(
        currency=currency,
        since=since,
        until=until,
        lines=kept,
        by_member=dict(by_member),
        problems=list(dict.fromkeys(problems)),
        converted=converted,
    )


def fill_facts(
    *,
    accounts: Sequence[KrakenAccount],
    since: datetime | None = None,
    until: datetime | None = None,
    chunk: int = 5000,
) -> Iterable[FillFact]:
    """Every fill of `accounts`, oldest first, streamed in chunks (one query)."""
    window = Q()
    if since is not None:
        window &= Q(executed_at__gte=since)
    if until is not None:
        window &= Q(executed_at__lt=until)
    fills = ExchangeFill.objects.filter(
        account_id__in=[account.pk for account in accounts]
    ).order_by("executed_at", "id")
    if window:
        fills = fills.annotate(
            in_window=ExpressionWrapper(window, output_field=BooleanField()),
            window_fees=Case(
                When(window, then=F("fees")), default=Value(None), output_field=JSONField()
            ),
        )
    else:  # every fill counts
        fills = fills.annotate(in_window=Value(True), window_fees=F("fees"))
    rows = fills.values_list(
        "account_id",
        "pair",
        "side",
        "price",
        "qty",
        "window_fees",
        "in_window",
        "order__operation__requested_by_id",
    )
    return map(FillFact._make, rows.iterator(chunk_size=chunk))


def value_open(report: Report, rate: RateSource) -> Report:
    """Value each open position at the live mid: unrealised = mid x position - cost (the sum
    over its lots of (mid - unit cost) x quantity). Separate from the walk, so a cached walk
    is valued at the prices of now."""
    for line in report.lines:
        line.mid, line.unrealised = None, ZERO
        if not line.position:
            continue
        try:
            line.mid = Decimal(1) if line.asset == report.currency else rate(line.asset)
        except Unvalued:
            line.unrealised = None
            continue
        line.unrealised = line.mid * line.position - line.cost
    return report


# The walk over every fill is what costs (about 3 s per 100,000 fills on a loaded machine), and
# its result changes only when an order or fill does: it is cached per organization, window and
# version, and the desk's live event (live_blotter) moves the version. Rates of quotes other
# than the reporting currency used by the walk may lag by up to CACHE_SECONDS; open positions
# are always valued at the live mid.
CACHE_SECONDS = 60


def _version_key(org_id: int) -> str:
    return f"trading:pnl:version:{org_id}"


def pnl_invalidate(*, org_id: int) -> None:
    """A fill or order of the organization changed: the next report walks again."""
    try:
        shared_cache.incr(_version_key(org_id))
    except ValueError:  # no version yet
        shared_cache.set(_version_key(org_id), 1, None)


def pnl_report(
    *,
    accounts: Sequence[KrakenAccount],
    currency: str,
    since: datetime | None = None,
    until: datetime | None = None,
    rate: RateSource | None = None,
    org_id: int | None = None,
) -> Report:
    """The P&L of `accounts` in `currency` for [since, until), with live prices unless `rate`
    is given. With `org_id` the walk is cached (see CACHE_SECONDS)."""
    problems: list[str] = []
    if rate is None:
        rate, problems = live_rates(currency)
    key = None
    if org_id is not None:
        version = shared_cache.get_or_set(_version_key(org_id), 1, None)
        ids = ",".join(str(a.pk) for a in accounts)
        window = f"{since.isoformat() if since else ''}/{until.isoformat() if until else ''}"
        key = f"trading:pnl:{org_id}:{version}:{currency}:{ids}:{window}"
        cached = shared_cache.get(key)
        if isinstance(cached, Report):
            return _with_problems(value_open(cached, rate), problems)
    opening = list(OpeningLot.objects.filter(account_id__in=[a.pk for a in accounts]))
    report = fifo(
        fills=fill_facts(accounts=accounts, since=since, until=until),
        opening=opening,
        currency=currency,
        rate=rate,
        since=since,
        until=until,
    )
    if key is not None:
        shared_cache.set(key, report, CACHE_SECONDS)
    return _with_problems(value_open(report, rate), problems)


def _with_problems(report: Report, problems: list[str]) -> Report:
    report.problems = list(dict.fromkeys([*report.problems, *problems]))
    return report


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def pnl_window(
    org: Organization, since: date | None, until: date | None, now: datetime | None = None
) -> tuple[datetime, datetime, str]:
    """[start, end) and its label: the business day containing now unless days are chosen
    (read as business days, so "today" and a chosen range mean the same kind of day)."""
    now = now or timezone.now()
    if since is None and until is None:
        start, end = business_day_bounds(org, now)
        return start, end, "Today"
    zone = ZoneInfo(org.business_timezone)
    first = since if since is not None else until
    last = until if until is not None else since
    if first is None or last is None:  # unreachable: one of them is set
        raise ValueError("a range needs a day")
    start = _day_start(first, zone)
    end = _day_start(last + timedelta(days=1), zone)
    label = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    return start, end, label
