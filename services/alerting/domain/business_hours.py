"""Business hours: when a follow-up clock runs, in the tenant's time zone, without its public holidays.

Open hours are ``[opens, closes)`` local wall time on each working day that is not a public holiday
of the holiday country (and subdivision) in that year. ``opens == closes == 00:00`` means open all
day. Every day's stretch is worked out on the local calendar and only then turned into UTC, so a DST
change shortens or lengthens that day's stretch by the hour the clocks moved, as a person on the
spot would count it; all arithmetic between stretches is done on UTC instants.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

MIDNIGHT = time(0)
#: A configuration with no open time for this many days in a row is refused when a clock is run on it
#: (a tenant open on no day that is not a holiday); real configurations never come near it.
SEARCH_DAYS = 400
_DAY = timedelta(days=1)
_ZERO = timedelta(0)


@functools.lru_cache(maxsize=1024)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of one country (and subdivision) in one year, from the ``holidays`` calendar."""
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


@functools.lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    return holidays.list_supported_countries()


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), not {moment.isoformat()}")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When a tenant's team works: ``working_days`` are 0 = Monday .. 6 = Sunday."""

    time_zone: str
    working_days: frozenset[int]
    opens: time
    closes: time
    holiday_country: str | None = None
    holiday_subdivision: str | None = None

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {self.time_zone!r}: use an IANA name such as 'Europe/Copenhagen'"
            ) from None
        self._check_days_and_times()
        self._check_holiday_calendar()

    def _check_days_and_times(self) -> None:
        if not self.working_days:
            raise ValueError("working days must name at least one day (0 = Monday .. 6 = Sunday)")
        outside = sorted(day for day in self.working_days if not 0 <= day <= 6)
        if outside:
            raise ValueError(f"working days are 0 = Monday .. 6 = Sunday, not {outside}")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opening and closing times are local wall times: give them without a time zone")
        if self.opens >= self.closes and not self.all_day:
            raise ValueError(
                f"opening time {self.opens.isoformat()} must be before closing time "
                f"{self.closes.isoformat()} (00:00-00:00 means open all day)"
            )

    def _check_holiday_calendar(self) -> None:
        country, subdivision = self.holiday_country, self.holiday_subdivision
        if country is None:
            if subdivision is not None:
                raise ValueError(f"holiday subdivision {subdivision!r} needs a holiday country")
            return
        supported = _supported_countries()
        if country not in supported:
            raise ValueError(f"unknown holiday country {country!r}: use an ISO 3166-1 alpha-2 code like 'DK'")
        if subdivision is not None and subdivision not in supported[country]:
            known = ", ".join(supported[country]) or "none"
            raise ValueError(
                f"unknown holiday subdivision {subdivision!r} of {country}; its subdivisions are: {known}"
            )

    @property
    def all_day(self) -> bool:
        return self.opens == self.closes == MIDNIGHT

    def is_working_day(self, day: date) -> bool:
        """A working weekday that is not a public holiday (the local calendar date)."""
        if day.weekday() not in self.working_days:
            return False
        if self.holiday_country is None:
            return True
        return day not in public_holidays(self.holiday_country, self.holiday_subdivision, day.year)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant, in UTC, at which ``duration`` of business time has passed since ``start``.
        Outside open hours the clock starts at the next opening; a duration used up exactly at a closing
        time ends at that closing time, not at the next opening. A zero duration is ``start`` itself.

        UTC because Python compares two datetimes of one zone by wall time, so during the repeated hour
        of an autumn DST change two local times would compare the wrong way round."""
        _require_aware(start, "start")
        if duration < _ZERO:
            raise ValueError(f"a duration of business time cannot be negative: {duration}")
        if duration == _ZERO:
            return start.astimezone(UTC)
        remaining = duration
        for opens, closes in self._open_stretches(start):
            if closes - opens >= remaining:
                return opens + remaining
            remaining -= closes - opens
        raise AssertionError("open stretches without an end never run out")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """The business time between two instants; zero when ``end`` is not after ``start``. The inverse
        of :meth:`add`: ``elapsed(s, add(s, d)) == d``."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        end_utc = end.astimezone(UTC)
        total = _ZERO
        if end_utc <= start.astimezone(UTC):
            return total
        for opens, closes in self._open_stretches(start, until=end_utc):
            if opens >= end_utc:
                break
            total += min(closes, end_utc) - opens
        return total

    def next_opening(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) when the business is open then, else the next instant it opens."""
        _require_aware(at, "at")
        opens, _ = next(self._open_stretches(at))
        return opens

    def is_open(self, at: datetime) -> bool:
        return self.next_opening(at) == at.astimezone(UTC)

    def _open_stretches(
        self, start: datetime, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """The open stretches in UTC, in order and not overlapping, that end after ``start`` (the first
        one clipped to begin at ``start``); with ``until``, none of a local day after ``until``'s. One
        step per calendar day, so a long duration costs days, not minutes."""
        zone = ZoneInfo(self.time_zone)
        cursor = start.astimezone(UTC)
        # The day before, in case a DST change moved the previous day's stretch past local midnight.
        day = cursor.astimezone(zone).date() - _DAY
        last_day = None if until is None else until.astimezone(zone).date() + _DAY
        last_open = day
        while last_day is None or day <= last_day:
            if (day - last_open).days > SEARCH_DAYS:
                raise ValueError(f"no open hours within {SEARCH_DAYS} days of {start.isoformat()} in {self}")
            if self.is_working_day(day):
                opens, closes = self._stretch_of(day, zone)
                opens = max(opens, cursor)
                if closes > opens:
                    yield opens, closes
                    cursor, last_open = closes, day
            day += _DAY

    def _stretch_of(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """One working day's open hours as UTC instants. A local time that a DST change skips is read with
        the offset in force before the change (Python's ``fold=0``: 02:30 on the night clocks jump from
        02:00 to 03:00 is 03:30 summer time); a local time that happens twice is its first occurrence."""
        opens = datetime.combine(day, self.opens, tzinfo=zone)
        if self.all_day:
            closes = datetime.combine(day + _DAY, MIDNIGHT, tzinfo=zone)
        else:
            closes = datetime.combine(day, self.closes, tzinfo=zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)


#: What a new tenant gets: Monday to Friday, 09:00-17:00 UTC, no public holidays.
DEFAULT_HOURS = BusinessHours(
    time_zone="UTC", working_days=frozenset(range(5)), opens=time(9), closes=time(17)
)
#: Every day, all day, UTC: business time is wall-clock time (a 24 h SLA is 24 hours).
ALWAYS_OPEN = BusinessHours(
    time_zone="UTC", working_days=frozenset(range(7)), opens=MIDNIGHT, closes=MIDNIGHT
)
