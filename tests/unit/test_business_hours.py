"""Business hours: what a team lead would check on a calendar, and the properties the SLA clock needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerting.domain import business_hours
from services.alerting.domain.business_hours import ALWAYS_OPEN, DEFAULT_HOURS, MIDNIGHT, BusinessHours

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def hours(
    zone: str = "Europe/Copenhagen",
    country: str | None = None,
    subdivision: str | None = None,
    days: frozenset[int] = WEEKDAYS,
    opens: time = time(9),
    closes: time = time(17),
) -> BusinessHours:
    return BusinessHours(zone, days, opens, closes, holiday_country=country, holiday_subdivision=subdivision)


def cph(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=COPENHAGEN)


H = timedelta(hours=1)


# --- Weekends and opening times ------------------------------------------------------------------------


def test_a_case_opened_friday_at_four_with_an_eight_hour_target_is_due_monday_at_four() -> None:
    # One hour on Friday (16-17), seven on Monday from 09:00.
    assert hours().add(cph(2026, 11, 27, 16), 8 * H) == cph(2026, 11, 30, 16)


def test_a_case_opened_friday_at_three_with_an_eight_hour_target_is_due_monday_at_three() -> None:
    assert hours().add(cph(2026, 11, 27, 15), 8 * H) == cph(2026, 11, 30, 15)


def test_the_result_is_a_utc_instant() -> None:
    # Friday 15:00 UTC is 16:00 in Copenhagen: one hour on Friday, seven on Monday.
    due = hours().add(cph(2026, 11, 27, 16), 8 * H)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 11, 30, 15, tzinfo=UTC)
    assert due.astimezone(COPENHAGEN).hour == 16


def test_the_repeated_hour_of_the_autumn_change_is_counted_in_order() -> None:
    # 25 October 2026, 02:00-03:00 happens twice; one hour after the first 02:30 is the second 02:30.
    always = hours(days=EVERY_DAY, opens=MIDNIGHT, closes=MIDNIGHT)
    first = datetime(2026, 10, 25, 2, 30, tzinfo=COPENHAGEN)
    second = always.add(first, H)
    assert second == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert second.astimezone(COPENHAGEN).replace(tzinfo=None) == datetime(2026, 10, 25, 2, 30)
    assert always.elapsed(first, second) == H


def test_a_duration_used_up_at_closing_time_ends_at_closing_time_not_at_the_next_opening() -> None:
    assert hours().add(cph(2026, 11, 27, 16), H) == cph(2026, 11, 27, 17)


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (cph(2026, 11, 28, 10), cph(2026, 11, 30, 10)),  # Saturday: the clock starts Monday 09:00
        (cph(2026, 11, 29, 23, 59), cph(2026, 11, 30, 10)),  # late Sunday
        (cph(2026, 11, 30, 7), cph(2026, 11, 30, 10)),  # before opening
        (cph(2026, 11, 30, 18), cph(2026, 12, 1, 10)),  # after closing
        (cph(2026, 11, 27, 17), cph(2026, 11, 30, 10)),  # at closing time: closed
    ],
)
def test_a_case_opened_outside_open_hours_starts_its_clock_at_the_next_opening(
    opened: datetime, due: datetime
) -> None:
    assert hours().add(opened, H) == due


def test_next_opening_and_is_open() -> None:
    week = hours()
    assert week.next_opening(cph(2026, 11, 28, 10)) == cph(2026, 11, 30, 9)
    assert week.next_opening(cph(2026, 11, 30, 12)) == cph(2026, 11, 30, 12)
    assert week.is_open(cph(2026, 11, 30, 9))
    assert week.is_open(cph(2026, 11, 30, 16, 59, 59))
    assert not week.is_open(cph(2026, 11, 30, 17))
    assert not week.is_open(cph(2026, 11, 28, 12))


def test_zero_business_time_after_a_moment_is_that_moment() -> None:
    saturday = cph(2026, 11, 28, 10)
    assert hours().add(saturday, timedelta(0)) == saturday


def test_the_default_hours_are_weekdays_nine_to_five_utc() -> None:
    friday = datetime(2026, 11, 27, 16, tzinfo=UTC)
    assert DEFAULT_HOURS.add(friday, 24 * H) == datetime(2026, 12, 2, 16, tzinfo=UTC)
    assert DEFAULT_HOURS.holiday_country is None


def test_always_open_counts_wall_clock_hours() -> None:
    friday = datetime(2026, 12, 25, 16, tzinfo=UTC)
    assert ALWAYS_OPEN.add(friday, 24 * H) == datetime(2026, 12, 26, 16, tzinfo=UTC)
    assert ALWAYS_OPEN.elapsed(friday, friday + timedelta(days=3)) == timedelta(days=3)


def test_a_long_duration_runs_over_many_weeks() -> None:
    # 50 eight-hour days = 10 working weeks; from Monday 09:00, due Friday 17:00 ten weeks on.
    assert hours().add(cph(2026, 11, 2, 9), 400 * H) == cph(2027, 1, 8, 17)


# --- Public holidays -----------------------------------------------------------------------------------


def test_danish_christmas_day_is_skipped() -> None:
    # Christmas Eve 2026 is a Thursday; Christmas Day (Friday) is a Danish public holiday.
    christmas_eve = cph(2026, 12, 24, 16)
    assert hours(country="DK").add(christmas_eve, 8 * H) == cph(2026, 12, 28, 16)
    assert hours().add(christmas_eve, 8 * H) == cph(2026, 12, 25, 16)


def test_danish_easter_from_maundy_thursday_to_easter_monday_is_skipped() -> None:
    # Easter 2027: Maundy Thursday 25 March, Good Friday 26, Easter Monday 29; DST starts on the 28th.
    wednesday = cph(2027, 3, 24, 16)
    due = hours(country="DK").add(wednesday, 8 * H)
    assert due == cph(2027, 3, 30, 16)
    assert due == datetime(2027, 3, 30, 14, tzinfo=UTC)  # summer time by then
    assert hours(country="DK").elapsed(wednesday, due) == 8 * H
    assert hours(country="DK").elapsed(cph(2027, 3, 29, 0), cph(2027, 3, 30, 0)) == timedelta(0)


def test_a_new_year_holiday_comes_from_the_next_years_calendar() -> None:
    # New Year's Eve 2026 is a Thursday; 1 January 2027 (Friday) is a public holiday.
    assert hours(country="DK").add(cph(2026, 12, 31, 16), 8 * H) == cph(2027, 1, 4, 16)


def test_epiphany_is_a_holiday_in_bavaria_but_not_in_berlin() -> None:
    tuesday = datetime(2027, 1, 5, 16, tzinfo=BERLIN)
    bavaria = hours("Europe/Berlin", "DE", "BY")
    berlin = hours("Europe/Berlin", "DE", "BE")
    assert bavaria.add(tuesday, 8 * H) == datetime(2027, 1, 7, 16, tzinfo=BERLIN)
    assert berlin.add(tuesday, 8 * H) == datetime(2027, 1, 6, 16, tzinfo=BERLIN)
    assert not bavaria.is_working_day(date(2027, 1, 6))
    assert berlin.is_working_day(date(2027, 1, 6))


def test_holiday_calendars_are_looked_up_once_per_country_subdivision_and_year() -> None:
    business_hours.public_holidays.cache_clear()
    danish = hours(country="DK")
    for week in range(4):
        danish.add(cph(2026, 11, 2, 9) + timedelta(weeks=week), 40 * H)
    assert business_hours.public_holidays.cache_info().misses == 1


# --- Daylight saving time ------------------------------------------------------------------------------


def test_24_hours_always_open_in_copenhagen_over_the_spring_change_end_an_hour_later_on_the_clock() -> None:
    # Last Sunday of March 2026: 02:00 becomes 03:00, the day has 23 hours.
    always = hours(days=EVERY_DAY, opens=MIDNIGHT, closes=MIDNIGHT)
    assert always.add(cph(2026, 3, 28, 12), 24 * H) == cph(2026, 3, 29, 13)
    assert always.elapsed(cph(2026, 3, 29), cph(2026, 3, 30)) == 23 * H


def test_24_hours_always_open_in_copenhagen_over_the_autumn_change_end_an_hour_earlier_on_the_clock() -> None:
    # Last Sunday of October 2026: 03:00 becomes 02:00 again, the day has 25 hours.
    always = hours(days=EVERY_DAY, opens=MIDNIGHT, closes=MIDNIGHT)
    assert always.add(cph(2026, 10, 24, 12), 24 * H) == cph(2026, 10, 25, 11)
    assert always.elapsed(cph(2026, 10, 25), cph(2026, 10, 26)) == 25 * H


def test_night_hours_spanning_the_change_are_as_long_as_the_night_really_is() -> None:
    sunday_nights = hours(days=frozenset({6}), opens=MIDNIGHT, closes=time(6))
    assert sunday_nights.elapsed(cph(2026, 3, 29), cph(2026, 3, 30)) == 5 * H
    assert sunday_nights.elapsed(cph(2026, 10, 25), cph(2026, 10, 26)) == 7 * H
    assert sunday_nights.add(cph(2026, 3, 29), 5 * H) == cph(2026, 3, 29, 6)
    assert sunday_nights.add(cph(2026, 3, 29), 6 * H) == cph(2026, 4, 5, 1)


def test_office_hours_in_new_york_over_both_changes_keep_their_local_times() -> None:
    ny = hours("America/New_York")
    # DST starts Sunday 8 March 2026: Friday 16:00 EST + 2 h is Monday 10:00 EDT.
    friday = datetime(2026, 3, 6, 16, tzinfo=NEW_YORK)
    monday = ny.add(friday, 2 * H)
    assert monday == datetime(2026, 3, 9, 10, tzinfo=NEW_YORK)
    assert monday.astimezone(UTC) == datetime(2026, 3, 9, 14, tzinfo=UTC)
    assert friday.astimezone(UTC) == datetime(2026, 3, 6, 21, tzinfo=UTC)
    # DST ends Sunday 1 November 2026: Friday 16:00 EDT + 2 h is Monday 10:00 EST.
    assert ny.add(datetime(2026, 10, 30, 16, tzinfo=NEW_YORK), 2 * H) == datetime(
        2026, 11, 2, 10, tzinfo=NEW_YORK
    )


def test_24_hours_always_open_in_new_york_over_the_spring_change() -> None:
    always = hours("America/New_York", days=EVERY_DAY, opens=MIDNIGHT, closes=MIDNIGHT)
    saturday = datetime(2026, 3, 7, 12, tzinfo=NEW_YORK)
    assert always.add(saturday, 24 * H) == datetime(2026, 3, 8, 13, tzinfo=NEW_YORK)


# --- Refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: hours(zone="Europe/Atlantis"), "unknown time zone 'Europe/Atlantis'"),
        (lambda: hours(zone="../etc/passwd"), "unknown time zone"),
        (lambda: hours(days=frozenset()), "at least one day"),
        (lambda: hours(days=frozenset({0, 7})), r"not \[7\]"),
        (lambda: hours(opens=time(17), closes=time(9)), "must be before closing time"),
        (lambda: hours(opens=time(9), closes=time(9)), "must be before closing time"),
        (lambda: hours(opens=time(9, tzinfo=UTC)), "without a time zone"),
        (lambda: hours(country="XX"), "unknown holiday country 'XX'"),
        (lambda: hours(country="DE", subdivision="XX"), "unknown holiday subdivision 'XX' of DE"),
        (lambda: hours(subdivision="BY"), "needs a holiday country"),
    ],
)
def test_a_configuration_that_makes_no_sense_is_refused_naming_the_problem(
    build: Callable[[], BusinessHours], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_open_all_day_is_midnight_to_midnight() -> None:
    assert hours(opens=MIDNIGHT, closes=MIDNIGHT).all_day


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 30, 10)
    with pytest.raises(ValueError, match="aware"):
        DEFAULT_HOURS.add(naive, H)
    with pytest.raises(ValueError, match="aware"):
        DEFAULT_HOURS.elapsed(naive, naive)
    with pytest.raises(ValueError, match="aware"):
        DEFAULT_HOURS.elapsed(datetime(2026, 11, 30, tzinfo=UTC), naive)


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        DEFAULT_HOURS.add(datetime(2026, 11, 30, tzinfo=UTC), -H)


def test_hours_that_are_never_open_are_refused_instead_of_searching_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class EveryDay:
        def __contains__(self, _: object) -> bool:
            return True

    monkeypatch.setattr(business_hours, "public_holidays", lambda *_: EveryDay())
    with pytest.raises(ValueError, match="no open hours within 400 days"):
        hours(country="DK").add(cph(2026, 11, 30), H)


def test_elapsed_is_zero_when_the_end_is_not_after_the_start() -> None:
    monday = cph(2026, 11, 30, 10)
    assert hours().elapsed(monday, monday) == timedelta(0)
    assert hours().elapsed(monday, monday - H) == timedelta(0)


def test_elapsed_over_a_weekend_counts_only_open_hours() -> None:
    assert hours().elapsed(cph(2026, 11, 27, 16), cph(2026, 11, 30, 10)) == 2 * H
    assert hours().elapsed(cph(2026, 11, 28), cph(2026, 11, 29, 23)) == timedelta(0)


# --- Properties ----------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Copenhagen",
    "America/New_York",
    "Australia/Lord_Howe",  # a half-hour DST change
    "America/Santiago",  # DST changes at midnight
    "Asia/Kolkata",
    "Pacific/Apia",
]
CALENDARS: list[tuple[str | None, str | None]] = [(None, None), ("DK", None), ("DE", "BY"), ("US", "NY")]


@st.composite
def configurations(draw: st.DrawFn) -> BusinessHours:
    country, subdivision = draw(st.sampled_from(CALENDARS))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    if draw(st.booleans()):
        opens = closes = MIDNIGHT
    else:
        # At least an hour a day, so that a few days of business time never take years.
        opening_minute = draw(st.integers(0, 23 * 60 - 1))
        closing_minute = draw(st.integers(opening_minute + 60, 24 * 60 - 1))
        opens, closes = (time(minute // 60, minute % 60) for minute in (opening_minute, closing_minute))
    return BusinessHours(draw(st.sampled_from(ZONES)), days, opens, closes, country, subdivision)


starts = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from([UTC, COPENHAGEN, NEW_YORK]),
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=80))


@settings(max_examples=300, deadline=None)
@given(config=configurations(), start=starts, duration=durations)
def test_elapsed_undoes_add(config: BusinessHours, start: datetime, duration: timedelta) -> None:
    assert config.elapsed(start, config.add(start, duration)) == duration


@settings(deadline=None)
@given(config=configurations(), start=starts, first=durations, second=durations)
def test_more_business_time_never_ends_earlier(
    config: BusinessHours, start: datetime, first: timedelta, second: timedelta
) -> None:
    shorter, longer = sorted((first, second))
    # All in UTC: two datetimes of one zone compare by wall time, wrongly in a repeated hour.
    assert start.astimezone(UTC) <= config.add(start, shorter) <= config.add(start, longer)


@settings(deadline=None)
@given(config=configurations(), start=starts, first=durations, second=durations)
def test_adding_in_two_goes_is_adding_once(
    config: BusinessHours, start: datetime, first: timedelta, second: timedelta
) -> None:
    assert config.add(config.add(start, first), second) == config.add(start, first + second)


@settings(deadline=None)
@given(config=configurations(), start=starts, wait=st.timedeltas(timedelta(0), timedelta(days=30)))
def test_business_time_never_exceeds_wall_clock_time(
    config: BusinessHours, start: datetime, wait: timedelta
) -> None:
    # Aware arithmetic in one zone is wall-clock arithmetic: add in UTC to move on by real time.
    assert config.elapsed(start, start.astimezone(UTC) + wait) <= wait


@given(start=starts, duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_always_open_is_wall_clock_time(start: datetime, duration: timedelta) -> None:
    later = start.astimezone(UTC) + duration
    assert ALWAYS_OPEN.add(start, duration) == later
    assert ALWAYS_OPEN.add(start, duration).tzinfo is UTC
    assert ALWAYS_OPEN.elapsed(start, later) == duration
