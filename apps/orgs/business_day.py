"""The organization's business day: what "today" and every daily limit or cap mean (issue 10 §2).

A day is the half-open interval [local midnight, next local midnight) in the organization's
IANA time zone, so it is 23 or 25 hours long on the days clocks change. Rolling 24-hour windows
(velocity caps on approvals) are not business days and do not use this module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

NAIVE_INSTANT = "business_day_bounds needs an aware datetime (timezone.now()), not a naive one."


class HasBusinessTimezone(Protocol):
    @property
    def business_timezone(self) -> str: ...


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC.

    Where midnight does not exist (clocks jump forward at 00:00, e.g. America/Santiago),
    zoneinfo reads the wall time with the offset before the jump (fold=0), which gives the
    jump's instant, i.e. the day's first; where midnight happens twice, fold=0 is the first.
    """
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def business_day_bounds(org: HasBusinessTimezone, when: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the organization's business day containing `when`: start <= when < end.

    Both are aware and in UTC, on purpose: Python subtracts and adds datetimes that share a
    ZoneInfo by wall clock (a 23-hour day would measure 24 hours), so the bounds are returned
    where arithmetic and database comparisons are exact; `.astimezone(zone)` them for display.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(NAIVE_INSTANT)
    zone = ZoneInfo(org.business_timezone)
    today = when.astimezone(zone).date()
    return _local_midnight(today, zone), _local_midnight(today + timedelta(days=1), zone)


def business_date(org: HasBusinessTimezone, when: datetime) -> str:
    """The ISO date of the business day containing `when` (a key for per-day counters)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(NAIVE_INSTANT)
    return when.astimezone(ZoneInfo(org.business_timezone)).date().isoformat()
