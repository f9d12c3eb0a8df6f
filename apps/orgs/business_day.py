"""The organization's business day: what "today" and every daily limit or cap mean (issue 10 §2).

A day is the half-open interval [local midnight, next local midnight) in the organization's
IANA time zone, so it is 23 or 25 hours long on the days clocks change. Rolling 24-hour windows
(velocity caps on approvals) are not business days and do not use this module.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

NAIVE_INSTANT = "business_day_bounds needs an aware datetime (timezone.now()), not a naive one."


class HasBusinessTimezone(Protocol):
    @property
    def business_timezone(self) -> str: ...


def _local_midnight(day: datetime, zone: ZoneInfo) -> datetime:
    """The first instant of `day`'s date in `zone`, as an aware datetime in `zone`.

    Where midnight does not exist (clocks jump forward at 00:00, e.g. America/Santiago),
    zoneinfo reads the wall time with the offset before the jump (fold=0), which is the jump's
    instant, i.e. the day's first; where midnight happens twice, fold=0 is the first of them.
    The round trip through UTC normalises the wall time (00:00 that never existed → 01:00).
    """
    wall = datetime.combine(day.date(), time.min, tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone)


def business_day_bounds(org: HasBusinessTimezone, when: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the organization's business day containing `when`: start <= when < end,
    both aware and in the organization's time zone."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(NAIVE_INSTANT)
    zone = ZoneInfo(org.business_timezone)
    local = when.astimezone(zone)
    start = _local_midnight(local, zone)
    # 26 hours after any local midnight is always on the next date (days are 23 to 25 hours).
    end = _local_midnight(start + timedelta(hours=26), zone)
    return start, end


def business_date(org: HasBusinessTimezone, when: datetime) -> str:
    """The ISO date of the business day containing `when` (a key for per-day counters)."""
    return business_day_bounds(org, when)[0].date().isoformat()
