"""Reads for the blotters (issue 11 §5): the organization's open orders, order history and fills,
from exchange's own records of every order on its Kraken accounts (the portal's and the
others', which the private streams add).

Pages are keyset pages, newest first: a page is "the next N rows after this one", found through
the indexes exchange keeps for it (apps.exchange.models: account, time, id), so page 1,000 costs
what page 1 costs and a row inserted meanwhile never shifts a row onto two pages. Each page is
one query whatever its length (accounts, operations, members and keys are joined, not fetched
per row).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from django.db import connection
from django.db.models import Exists, F, Q, QuerySet
from django.http import Http404

from apps.exchange.models import ExchangeFill, ExchangeOrder, Kind, Operation
from apps.kraken.naming import asset_spellings, pair_symbol
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.vault.models import Credential

PAGE_SIZE = 50
EXPORT_BATCH = 2000
OPEN_STATUSES = ("pending", "open")
ORDER_STATUSES = ("pending", "open", "closed", "canceled", "expired")
EXTERNAL = "external"
BAD_CURSOR = "The page marker is not one this page gave out."
NO_SUCH_ACCOUNT = "No such account."

type OrderView = Literal["open", "history"]


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class BlotterFilters:
    """What the reader asked for; every field optional. `member` is a user id or EXTERNAL;
    `since`/`until` are aware instants (the form reads days in the reader's time zone)."""

    account: int | None = None
    pair: str = ""  # a symbol, BTC/USD
    side: str = ""
    member: int | str | None = None
    key: int | None = None
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: its time (None for an order Kraken has not dated yet) and id."""

    at: datetime | None
    pk: int

    def encode(self) -> str:
        stamp = "-" if self.at is None else self.at.astimezone(UTC).isoformat()
        return base64.urlsafe_b64encode(f"{stamp}|{self.pk}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, _, pk = raw.partition("|")
            at = None if stamp == "-" else datetime.fromisoformat(stamp)
            number = int(pk)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadCursor(BAD_CURSOR) from None
        if (at is not None and at.tzinfo is None) or not 0 < number < 2**63:
            raise BadCursor(BAD_CURSOR)
        return cls(at=at, pk=number)


@dataclass(frozen=True)
class Page[T]:
    rows: list[T]
    next_cursor: str | None = None
    accounts: dict[int, KrakenAccount] = field(default_factory=dict)


def org_accounts(*, org: Organization) -> list[KrakenAccount]:
    """Every account of the organization, archived ones too: their history stays readable."""
    return list(KrakenAccount.objects.filter(org=org).order_by("parent_id", "label", "id"))


def pair_spellings(symbol: str) -> list[str]:
    """Every way Kraken (and so exchange's records) may spell `symbol`: BTC/USD is stored as
    the order was sent or as the stream named it (XBTUSD, XXBTZUSD, XBT/USD, BTC/USD)."""
    try:
        base, _, quote = pair_symbol(symbol).partition("/")
    except ValueError:
        return [symbol]
    spellings = set()
    for b in asset_spellings(base):
        for q in asset_spellings(quote):
            spellings.update({f"{b}/{q}", f"{b}{q}"})
    return sorted(spellings)


def _window(column: str, filters: BlotterFilters) -> Q:
    condition = Q()
    if filters.since is not None:
        condition &= Q(**{f"{column}__gte": filters.since})
    if filters.until is not None:
        condition &= Q(**{f"{column}__lt": filters.until})
    return condition


def _after(column: str, cursor: Cursor | None) -> Q:
    """Rows after `cursor` in (column DESC NULLS FIRST, id DESC) order."""
    if cursor is None:
        return Q()
    if cursor.at is None:
        return Q(**{f"{column}__isnull": True, "id__lt": cursor.pk}) | Q(
            **{f"{column}__isnull": False}
        )
    return Q(**{f"{column}__lt": cursor.at}) | Q(**{column: cursor.at, "id__lt": cursor.pk})


def _account_ids(accounts: Sequence[KrakenAccount], filters: BlotterFilters) -> list[int]:
    ids = [account.pk for account in accounts]
    if filters.account is not None:
        ids = [pk for pk in ids if pk == filters.account]  # another org's account: nothing
    return ids


def _who(prefix: str, filters: BlotterFilters) -> Q:
    condition = Q()
    if filters.member == EXTERNAL:
        condition &= Q(**{f"{prefix}operation__isnull": True})
    elif filters.member is not None:
        condition &= Q(**{f"{prefix}operation__requested_by_id": filters.member})
    if filters.key is not None:
        condition &= Q(**{f"{prefix}operation__credential_id": filters.key})
    return condition


def orders_queryset(
    *, accounts: Sequence[KrakenAccount], view: OrderView, filters: BlotterFilters
) -> QuerySet[ExchangeOrder]:
    orders = ExchangeOrder.objects.filter(account_id__in=_account_ids(accounts, filters))
    if view == "open":
        orders = orders.filter(status__in=OPEN_STATUSES)
    else:
        orders = orders.exclude(status__in=OPEN_STATUSES)
    if filters.status:
        orders = orders.filter(status=filters.status)
    if filters.pair:
        orders = orders.filter(pair__in=pair_spellings(filters.pair))
    if filters.side:
        orders = orders.filter(side=filters.side)
    orders = orders.filter(_who("", filters), _window("opened_at", filters))
    return orders.select_related("operation__requested_by", "operation__credential").order_by(
        F("opened_at").desc(nulls_first=True), F("id").desc()
    )


def fills_queryset(
    *, accounts: Sequence[KrakenAccount], filters: BlotterFilters
) -> QuerySet[ExchangeFill]:
    fills = ExchangeFill.objects.filter(account_id__in=_account_ids(accounts, filters))
    if filters.pair:
        fills = fills.filter(pair__in=pair_spellings(filters.pair))
    if filters.side:
        fills = fills.filter(side=filters.side)
    if filters.status:  # the order's status, for "fills of orders still open"
        fills = fills.filter(order__status=filters.status)
    fills = fills.filter(_who("order__", filters), _window("executed_at", filters))
    return fills.select_related(
        "order__operation__requested_by", "order__operation__credential"
    ).order_by(F("executed_at").desc(), F("id").desc())


def _branches(account_ids: list[int], filters: BlotterFilters) -> list[Q]:
    """One condition per index walk: an account, or an account and one spelling of the pair.

    Each walk is cheap only when its rows are where the index puts them, so a filtered page
    walks the narrowest index it can: with a pair, (account, pair, time) once per spelling
    Kraken may have stored; with a member or a key, an account where they placed nothing is
    skipped before it is walked (a one-time EXISTS, evaluated once per branch), rather than
    read to its end in search of rows that are not there.
    """
    spellings = pair_spellings(filters.pair) if filters.pair else [None]
    branches: list[Q] = []
    for pk in account_ids:
        guard = Q(account_id=pk)
        if isinstance(filters.member, int):
            placed = Operation.objects.filter(
                account_id=pk, requested_by_id=filters.member, kind=Kind.ADD_ORDER
            )
            guard &= Q(Exists(placed))
        if filters.key is not None:
            guard &= Q(Exists(Credential.objects.filter(pk=filters.key, account_id=pk)))
        branches.extend(guard if s is None else guard & Q(pair=s) for s in spellings)
    return branches


def _newest[T: (ExchangeOrder, ExchangeFill)](
    queryset: QuerySet[T], branches: list[Q], column: str, cursor: Cursor | None, size: int
) -> QuerySet[T]:
    """The next `size` + 1 rows after `cursor`, in one query that the indexes answer in order.

    `account_id IN (...) ORDER BY time, id` cannot walk the (account, time, id) index in order
    across several accounts, so PostgreSQL would sort every matching row (100,000 of them) to
    return 51. Instead each branch (an account, or an account and a pair spelling: _branches)
    takes its next rows from its own index walk (a LIMIT per branch), and the few are merged:
    UNION ALL, then the same order and limit (PostgreSQL merges them: Merge Append). SQLite
    cannot limit a branch of a compound query; it gets the plain form (it serves `make run`,
    not large desks).
    """
    after = queryset.filter(_after(column, cursor))
    if len(branches) < 2 or not connection.features.supports_slicing_ordering_in_compound:
        return after[: size + 1]
    first, *others = (after.filter(branch)[: size + 1] for branch in branches)
    order = (F(column).desc(nulls_first=True), F("id").desc())
    return first.union(*others, all=True).order_by(*order)[: size + 1]


def _page[T: (ExchangeOrder, ExchangeFill)](
    queryset: QuerySet[T], branches: list[Q], column: str, cursor: Cursor | None, size: int
) -> tuple[list[T], str | None]:
    rows = list(_newest(queryset, branches, column, cursor, size))
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    last = rows[-1]
    return rows, Cursor(at=getattr(last, column), pk=last.pk).encode()


def order_page(
    *,
    accounts: Sequence[KrakenAccount],
    view: OrderView,
    filters: BlotterFilters,
    after: str = "",
    size: int = PAGE_SIZE,
) -> Page[ExchangeOrder]:
    """One page of orders, newest first (orders Kraken has not dated yet come first). Raises
    BadCursor for a marker this module did not make."""
    cursor = Cursor.decode(after) if after else None
    queryset = orders_queryset(accounts=accounts, view=view, filters=filters)
    branches = _branches(_account_ids(accounts, filters), filters)
    rows, next_cursor = _page(queryset, branches, "opened_at", cursor, size)
    return Page(rows, next_cursor, {account.pk: account for account in accounts})


def fill_page(
    *,
    accounts: Sequence[KrakenAccount],
    filters: BlotterFilters,
    after: str = "",
    size: int = PAGE_SIZE,
) -> Page[ExchangeFill]:
    cursor = Cursor.decode(after) if after else None
    queryset = fills_queryset(accounts=accounts, filters=filters)
    branches = _branches(_account_ids(accounts, filters), filters)
    rows, next_cursor = _page(queryset, branches, "executed_at", cursor, size)
    return Page(rows, next_cursor, {account.pk: account for account in accounts})


def open_order_count(*, org: Organization) -> int:
    return ExchangeOrder.objects.filter(account__org=org, status__in=OPEN_STATUSES).count()


def blotter_members(*, org: Organization) -> list[tuple[int, str]]:
    """(user id, label) of everyone who is or was a member: a removed trader's orders stay."""
    members = Membership.all_objects.filter(org=org).select_related("user").order_by("user__email")
    return [(m.user_id, m.user.email + ("" if m.is_active else " (removed)")) for m in members]


def blotter_keys(*, org: Organization) -> list[tuple[int, str]]:
    """(credential id, label) of every key the organization ever stored, revoked ones too."""
    keys = Credential.objects.filter(org=org).order_by("label", "id")
    return [(key.pk, f"{key.label} ({key.masked_key})") for key in keys]


def org_account_get(*, org: Organization, pk: str | int) -> KrakenAccount:
    """One account of `org` (404 for anything else, including another organization's)."""
    try:
        number = int(pk)
    except (TypeError, ValueError):
        raise Http404(NO_SUCH_ACCOUNT) from None
    account = KrakenAccount.objects.filter(org=org, pk=number).first()
    if account is None:
        raise Http404(NO_SUCH_ACCOUNT)
    return account
