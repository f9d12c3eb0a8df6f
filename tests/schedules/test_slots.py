"""Slots across the daylight-saving changes of Europe/London and America/New_York, both ways,
and properties over any zone and cron expression (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.schedules.slots import (
    CRON_INVALID,
    CRON_NEVER,
    ZONE_INVALID,
    ScheduleError,
    cron_check,
    next_slots,
    slots_between,
    wall_to_instant,
    zone_get,
)

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def keys(slots: list) -> list[str]:
    return [slot.key for slot in slots]


def test_a_daily_slot_in_london_keeps_its_wall_time_across_the_spring_change() -> None:
    slots = next_slots(
        kind="cron", cron="0 9 * * *", zone=LONDON, after=utc(2026, 3, 27, 12), count=3
    )
    assert keys(slots) == [
        "2026-03-28T09:00 Europe/London",
        "2026-03-29T09:00 Europe/London",
        "2026-03-30T09:00 Europe/London",
    ]
    # 09:00 GMT is 09:00 UTC; from the 29th 09:00 BST is 08:00 UTC.
    assert [s.at for s in slots] == [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)]


def test_a_london_wall_time_that_does_not_exist_runs_once_when_the_clocks_jump() -> None:
    # 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not exist that night.
    slots = slots_between(
        kind="cron",
        cron="30 1 * * *",
        zone=LONDON,
        after=utc(2026, 3, 28, 12),
        until=utc(2026, 3, 30, 12),
    )
    assert keys(slots) == ["2026-03-29T01:30 Europe/London", "2026-03-30T01:30 Europe/London"]
    shifted = slots[0]
    assert shifted.shifted
    assert shifted.at == utc(2026, 3, 29, 1)  # 02:00 BST, the first valid instant after the jump
    assert shifted.at.astimezone(ZoneInfo(LONDON)).strftime("%H:%M") == "02:00"
    assert slots[1].at == utc(2026, 3, 30, 0, 30)


def test_a_london_wall_time_that_occurs_twice_runs_once_at_its_first_occurrence() -> None:
    # 25 October 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
    slots = slots_between(
        kind="cron",
        cron="30 1 * * *",
        zone=LONDON,
        after=utc(2026, 10, 24, 12),
        until=utc(2026, 10, 26, 12),
    )
    assert keys(slots) == ["2026-10-25T01:30 Europe/London", "2026-10-26T01:30 Europe/London"]
    assert slots[0].at == utc(2026, 10, 25, 0, 30)  # 01:30 BST, not 01:30 GMT an hour later


def test_every_quarter_hour_through_the_london_autumn_night_has_no_repeat() -> None:
    slots = slots_between(
        kind="cron",
        cron="*/15 * * * *",
        zone=LONDON,
        after=utc(2026, 10, 24, 23, 50),
        until=utc(2026, 10, 25, 2, 10),
    )
    walls = keys(slots)
    assert len(walls) == len(set(walls))
    # 00:00 BST .. 01:45 BST, then 02:00 GMT..: the second 01:00-01:45 (GMT) are the same slots.
    assert walls[0] == "2026-10-25T01:00 Europe/London"
    assert "2026-10-25T02:00 Europe/London" in walls
    assert [s.at for s in slots] == sorted(s.at for s in slots)
    # From 01:45 BST (00:45 UTC) to 02:00 GMT (02:00 UTC) nothing runs: that hour was done.
    after_first = [s for s in slots if utc(2026, 10, 25, 0, 46) <= s.at < utc(2026, 10, 25, 2)]
    assert after_first == []


def test_new_york_spring_forward_runs_the_missing_two_thirty_at_three() -> None:
    # 8 March 2026: 02:00 EST becomes 03:00 EDT.
    slots = slots_between(
        kind="cron",
        cron="30 2 * * *",
        zone=NEW_YORK,
        after=utc(2026, 3, 7, 12),
        until=utc(2026, 3, 9, 12),
    )
    assert keys(slots) == ["2026-03-08T02:30 America/New_York", "2026-03-09T02:30 America/New_York"]
    assert slots[0].at == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert slots[0].at.astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == "03:00"
    assert slots[1].at == utc(2026, 3, 9, 6, 30)  # 02:30 EDT


def test_new_york_fall_back_runs_the_doubled_one_thirty_once() -> None:
    # 1 November 2026: 02:00 EDT becomes 01:00 EST.
    slots = slots_between(
        kind="cron",
        cron="30 1 * * *",
        zone=NEW_YORK,
        after=utc(2026, 10, 31, 12),
        until=utc(2026, 11, 2, 12),
    )
    assert keys(slots) == ["2026-11-01T01:30 America/New_York", "2026-11-02T01:30 America/New_York"]
    assert slots[0].at == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first of the two


def test_hourly_through_the_new_york_spring_gap_runs_each_wall_time_once() -> None:
    slots = slots_between(
        kind="cron",
        cron="0 * * * *",
        zone=NEW_YORK,
        after=utc(2026, 3, 8, 5, 30),
        until=utc(2026, 3, 8, 9, 30),
    )
    assert keys(slots) == [
        "2026-03-08T01:00 America/New_York",
        "2026-03-08T02:00 America/New_York",  # does not exist: runs at 03:00 EDT
        "2026-03-08T03:00 America/New_York",
        "2026-03-08T04:00 America/New_York",
        "2026-03-08T05:00 America/New_York",
    ]
    assert slots[1].at == slots[2].at == utc(2026, 3, 8, 7)


def test_an_interval_is_anchored_in_utc_whatever_the_clocks_do() -> None:
    anchor = utc(2026, 3, 29, 0, 0)
    slots = next_slots(
        kind="interval", interval_minutes=45, anchor=anchor, after=utc(2026, 3, 29, 0, 50), count=3
    )
    assert [s.at for s in slots] == [
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2, 15),
        utc(2026, 3, 29, 3),
    ]
    assert keys(slots)[0] == "2026-03-29T01:30 UTC"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", CRON_INVALID),
        ("61 * * * *", CRON_INVALID),
        ("* * * * * *", CRON_INVALID),
        ("every day", CRON_INVALID),
        ("0 0 30 2 *", CRON_NEVER),
    ],
)
def test_a_bad_cron_expression_is_refused_with_its_reason(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        cron_check(expression)
    assert caught.value.field == "cron"
    assert caught.value.message == message


@pytest.mark.parametrize("zone", ["Europe/Londn", "../etc/passwd", "", "GMT+25"])
def test_an_unknown_time_zone_is_refused(zone: str, db: object) -> None:
    with pytest.raises(ScheduleError) as caught:
        zone_get(zone)
    assert (caught.value.field, caught.value.message) == ("timezone", ZONE_INVALID)


ZONES = st.sampled_from(
    [
        LONDON,
        NEW_YORK,
        "Europe/Paris",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Kolkata",
        "UTC",
        "Pacific/Chatham",
        "America/St_Johns",
    ]
)
CRONS = st.sampled_from(
    [
        "*/15 * * * *",
        "30 1 * * *",
        "0 2 * * *",
        "45 * * * *",
        "0 0 * * 0",
        "30 2 * * 1-5",
        "0 */3 * * *",
        "15,45 0-3 * * *",
    ]
)
# Naive bounds are what hypothesis's datetimes() takes; the values get a zone below.
LOW = datetime(2025, 1, 1)  # noqa: DTZ001
HIGH = datetime(2028, 12, 31)  # noqa: DTZ001
INSTANTS = st.datetimes(min_value=LOW, max_value=HIGH).map(
    lambda d: d.replace(tzinfo=UTC, second=0, microsecond=0)
)


@settings(max_examples=60, deadline=None)
@given(zone=ZONES, cron=CRONS, start=INSTANTS)
def test_slots_are_unique_ordered_and_each_wall_time_runs_at_or_after_itself(
    zone: str, cron: str, start: datetime
) -> None:
    slots = slots_between(
        kind="cron", cron=cron, zone=zone, after=start, until=start + timedelta(days=1)
    )
    tz = ZoneInfo(zone)
    assert len({s.key for s in slots}) == len(slots)
    assert [s.at for s in slots] == sorted(s.at for s in slots)
    for slot in slots:
        assert slot.at > start
        local = slot.at.astimezone(tz).replace(tzinfo=None)
        if slot.shifted:
            # A wall time that does not exist runs at the jump: the first wall time after it.
            assert local > slot.wall
            assert local - slot.wall <= timedelta(hours=1)
            assert (slot.at - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) < slot.wall
        else:
            assert local == slot.wall


@settings(max_examples=60, deadline=None)
@given(zone=ZONES, cron=CRONS, start=INSTANTS, cut=st.integers(min_value=1, max_value=23 * 60))
def test_slots_do_not_depend_on_where_the_walk_starts(
    zone: str, cron: str, start: datetime, cut: int
) -> None:
    """A tick that resumes from any instant sees the same slots as one that walked through it:
    no slot is claimed twice or lost across a restart."""
    end = start + timedelta(days=1)
    whole = slots_between(kind="cron", cron=cron, zone=zone, after=start, until=end)
    middle = start + timedelta(minutes=cut)
    first = slots_between(kind="cron", cron=cron, zone=zone, after=start, until=middle)
    rest = slots_between(kind="cron", cron=cron, zone=zone, after=middle, until=end)
    # Slots sharing an instant (wall times in a gap) cannot be split by an instant.
    assert keys(first) + keys(rest) == keys(whole)


@settings(max_examples=200, deadline=None)
@given(zone=ZONES, wall=st.datetimes(min_value=LOW, max_value=HIGH))
def test_every_wall_time_has_one_instant_that_is_never_before_it(zone: str, wall: datetime) -> None:
    wall = wall.replace(second=0, microsecond=0)
    tz = ZoneInfo(zone)
    at = wall_to_instant(wall, tz)
    local = at.astimezone(tz).replace(tzinfo=None)
    assert local >= wall
    # The first occurrence: one second earlier the wall clock read before `wall`.
    assert (at - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) < wall or local > wall
