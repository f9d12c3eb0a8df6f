"""The organization's business day across daylight-saving changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.orgs.business_day import business_date, business_day_bounds


@dataclass(frozen=True)
class Org:
    business_timezone: str


LONDON = Org("Europe/London")
NEW_YORK = Org("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_utc_organizations_day_is_the_utc_calendar_day() -> None:
    start, end = business_day_bounds(Org("UTC"), utc(2026, 3, 29, 12, 0))
    assert (start, end) == (utc(2026, 3, 29), utc(2026, 3, 30))


def test_london_spring_forward_day_is_23_hours() -> None:
    # 29 March 2026: clocks go from 01:00 GMT to 02:00 BST.
    start, end = business_day_bounds(LONDON, utc(2026, 3, 29, 12, 0))
    assert start == utc(2026, 3, 29, 0, 0)  # midnight GMT
    assert end == utc(2026, 3, 29, 23, 0)  # next midnight is BST
    assert end - start == timedelta(hours=23)
    # Both bounds are local midnights.
    assert start.astimezone(ZoneInfo("Europe/London")).strftime("%d %H:%M") == "29 00:00"
    assert end.astimezone(ZoneInfo("Europe/London")).strftime("%d %H:%M") == "30 00:00"


def test_london_fall_back_day_is_25_hours() -> None:
    # 25 October 2026: clocks go from 02:00 BST back to 01:00 GMT.
    start, end = business_day_bounds(LONDON, utc(2026, 10, 25, 1, 30))  # the repeated hour
    assert start == utc(2026, 10, 24, 23, 0)
    assert end == utc(2026, 10, 26, 0, 0)
    assert end - start == timedelta(hours=25)


def test_new_york_spring_forward_and_fall_back() -> None:
    # 8 March 2026 (02:00 EST → 03:00 EDT) and 1 November 2026 (02:00 EDT → 01:00 EST).
    start, end = business_day_bounds(NEW_YORK, utc(2026, 3, 8, 15, 0))
    assert (start, end) == (utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 4, 0))
    assert end - start == timedelta(hours=23)
    start, end = business_day_bounds(NEW_YORK, utc(2026, 11, 1, 15, 0))
    assert (start, end) == (utc(2026, 11, 1, 4, 0), utc(2026, 11, 2, 5, 0))
    assert end - start == timedelta(hours=25)


def test_late_evening_utc_is_still_the_previous_business_day_in_new_york() -> None:
    # 03:30 UTC on 9 March is 23:30 EDT on 8 March.
    assert business_date(NEW_YORK, utc(2026, 3, 9, 3, 30)) == "2026-03-08"
    assert business_date(LONDON, utc(2026, 3, 9, 3, 30)) == "2026-03-09"


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "America/Santiago"])
def test_consecutive_days_tile_the_year_without_gaps_or_overlaps(zone: str) -> None:
    # America/Santiago changes its clocks at midnight, so some days have no 00:00.
    org = Org(zone)
    start, end = business_day_bounds(org, utc(2026, 1, 1, 12))
    for _ in range(366):
        assert start <= end - timedelta(hours=23)
        assert end - start <= timedelta(hours=25)
        next_start, next_end = business_day_bounds(org, end)
        assert next_start == end
        # The day's last instant still belongs to it.
        assert business_day_bounds(org, end - timedelta(microseconds=1)) == (start, end)
        assert end.astimezone(ZoneInfo(zone)).hour in {0, 1}  # 01:00 where 00:00 never was
        start, end = next_start, next_end


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        business_day_bounds(LONDON, datetime(2026, 3, 29, 12))  # noqa: DTZ001
