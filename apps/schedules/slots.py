"""When a workflow runs: its slots, computed from a cron expression in an IANA time zone or from
an interval anchored in UTC. Pure functions (no database), so the rules below are tested by
property (tests/schedules/test_slots.py).

A slot is identified by its local wall time and its time zone ("2026-03-29T01:30 Europe/London"),
not by an instant, because that is what the person who wrote "30 1 * * *" meant. Two rules follow
from the clock changes of daylight saving time:

- A wall time that occurs twice (clocks go back: 01:30 happens at 01:30 BST and again at 01:30
  GMT) is one slot, so it runs once, at its first occurrence. The identity is the wall time, so
  the second occurrence would name the same slot and the unique constraint on (workflow, slot)
  would refuse it anyway; we never produce it.
- A wall time that does not exist (clocks go forward: 01:30 on the last Sunday of March in
  London) still runs once, at the next valid instant: the moment the clocks jump (02:00 BST).

An interval schedule ("every 15 minutes from 2026-01-01 00:00 UTC") has no such ambiguity: its
slots are the anchor plus whole multiples of the interval, named by their UTC wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterError
from django.core.exceptions import ValidationError as DjangoValidationError

from apps.orgs.validators import validate_time_zone

# Messages shown next to the form fields (the service raises them, the form shows them).
CRON_INVALID = (
    "Not a valid cron expression: five fields, minute hour day-of-month month day-of-week "
    "(for example 0 9 * * 1-5)."
)
CRON_NEVER = "This cron expression never matches a date."
ZONE_INVALID = "Choose a time zone from the list (an IANA name such as Europe/London)."
INTERVAL_INVALID = "The interval must be a whole number of minutes, from 1 to 44,640 (31 days)."

UTC_NAME = "UTC"
MAX_INTERVAL_MINUTES = 31 * 24 * 60
WALL_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True, order=True)
class Slot:
    """One scheduled run: the instant it runs at and its identity (wall time and zone)."""

    at: datetime  # aware, UTC: when the run is due
    wall: datetime  # naive: the local wall time the schedule names
    zone: str

    @property
    def key(self) -> str:
        return f"{self.wall.strftime(WALL_FORMAT)} {self.zone}"

    @property
    def shifted(self) -> bool:
        """The wall time did not exist (clocks forward): it runs at the next valid instant."""
        return _to_wall(self.at, ZoneInfo(self.zone)) != self.wall


class ScheduleError(ValueError):
    """A schedule that cannot be computed; `field` names the form field to show it next to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def zone_get(name: str) -> ZoneInfo:
    """The zone named `name`, if it is in the tz database (a path such as "../etc/passwd",
    which ZoneInfo would try to open, is refused by orgs' validator first)."""
    if name != UTC_NAME:
        try:
            validate_time_zone(name)
        except DjangoValidationError:
            raise ScheduleError("timezone", ZONE_INVALID) from None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", ZONE_INVALID) from None


@lru_cache(maxsize=4096)
def cron_check(expression: str) -> str:
    """The expression, normalised (single spaces), or ScheduleError. Five fields only: a
    seconds field would run more than once a minute, which the beat cannot honour."""
    text = " ".join(expression.split())
    if len(text.split(" ")) != 5:
        raise ScheduleError("cron", CRON_INVALID)
    try:
        valid = croniter.is_valid(text)
    except (CroniterError, ValueError, KeyError):
        valid = False
    if not valid:
        raise ScheduleError("cron", CRON_INVALID)
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None)).get_next(datetime)
    except CroniterBadCronError:
        raise ScheduleError("cron", CRON_INVALID) from None
    except (CroniterError, ValueError, KeyError):
        # Valid syntax that no date satisfies (the 30th of February).
        raise ScheduleError("cron", CRON_NEVER) from None
    return text


def interval_check(minutes: int | None) -> int:
    if minutes is None or not 1 <= minutes <= MAX_INTERVAL_MINUTES:
        raise ScheduleError("interval_minutes", INTERVAL_INVALID)
    return minutes


def _to_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return _to_wall(wall.replace(tzinfo=zone).astimezone(UTC), zone) == wall


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall time runs at: its first occurrence when it occurs twice, the moment
    the clocks jump when it does not occur at all."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _exists(wall, zone):
        # fold=0 is the earlier of two occurrences (zoneinfo follows PEP 495).
        return first
    # In a gap, fold=0 applies the offset from before the jump and fold=1 the one after, so the
    # jump lies between the two readings; find its exact second by bisection.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    low, high = min(low, high), max(low, high)
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _cron_walls(expression: str, after_wall: datetime) -> Iterator[datetime]:
    """Wall times matching `expression` strictly after `after_wall` (naive, local)."""
    iterator = croniter(expression, after_wall)
    while True:
        yield iterator.get_next(datetime)


def slots_after(
    *,
    kind: str,
    after: datetime,
    cron: str = "",
    zone: str = UTC_NAME,
    interval_minutes: int | None = None,
    anchor: datetime | None = None,
) -> Iterator[Slot]:
    """Every slot due strictly after the instant `after`, in order, without end.

    For cron, the wall times are walked in local time from the wall time of `after`; a wall
    time whose instant is not after `after` is left out (the second hour of a clocks-back night
    walks over wall times already passed)."""
    if after.tzinfo is None:
        raise ValueError("`after` must be aware")
    if kind == "interval":
        step = timedelta(minutes=interval_check(interval_minutes))
        base = (anchor or datetime(2000, 1, 1, tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
        index = max(0, (after - base) // step + 1) if after >= base else 0
        while True:
            at = base + index * step
            if at > after:
                yield Slot(at=at, wall=at.replace(tzinfo=None), zone=UTC_NAME)
            index += 1
    tz = zone_get(zone)
    expression = cron_check(cron)
    # A wall time's instant is the first moment the wall clock reads it or later, so every wall
    # time before the clock's reading at `after` ran at or before `after`: the walk starts at
    # that reading (a minute early, for the seconds), and the instant decides the rest (in the
    # second pass of a clocks-back hour, the walls ahead already ran in the first).
    start = _to_wall(after, tz) - timedelta(minutes=1)
    for wall in _cron_walls(expression, start.replace(second=0, microsecond=0)):
        at = wall_to_instant(wall, tz)
        if at > after:
            yield Slot(at=at, wall=wall, zone=zone)


def slots_between(
    *,
    kind: str,
    after: datetime,
    until: datetime,
    cron: str = "",
    zone: str = UTC_NAME,
    interval_minutes: int | None = None,
    anchor: datetime | None = None,
    limit: int = 100_000,
) -> list[Slot]:
    """The slots in (after, until], at most `limit` (the oldest first)."""
    found: list[Slot] = []
    for slot in slots_after(
        kind=kind,
        after=after,
        cron=cron,
        zone=zone,
        interval_minutes=interval_minutes,
        anchor=anchor,
    ):
        if slot.at > until or len(found) >= limit:
            break
        found.append(slot)
    return found


def next_slots(
    *,
    kind: str,
    after: datetime,
    count: int = 5,
    cron: str = "",
    zone: str = UTC_NAME,
    interval_minutes: int | None = None,
    anchor: datetime | None = None,
) -> list[Slot]:
    """The next `count` slots after `after` (the form's live preview)."""
    found: list[Slot] = []
    for slot in slots_after(
        kind=kind,
        after=after,
        cron=cron,
        zone=zone,
        interval_minutes=interval_minutes,
        anchor=anchor,
    ):
        found.append(slot)
        if len(found) >= count:
            break
    return found
