"""The query parameters the report's JSON routes share, checked the same way everywhere: each bad
value is a 422 in the platform's error shape naming the parameter (``query.since``), as FastAPI's
own checks name it.

- ``since``, ``until``: an ISO date or date-time (UTC when it has no zone); ``since`` inclusive,
  ``until`` exclusive. The panels built from cells (:class:`DayRange`) work in whole UTC days: a
  date-time counts from its date. Default ``until`` tomorrow (so today is in), ``since`` 90 days
  before it; ``since`` must be before ``until``, and at most 1096 days (3 years) before it;
  both from 1970 to 2200.
- ``touchpoint``: a touchpoint's name; ``segment``: ``dimension:value``; ``limit``: 1-500;
  ``cursor``: the ``next_cursor`` the previous page returned.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from libs.common.events import Timestamp
from services.reporting.domain.insight import Period
from services.reporting.repository import Segment as Segment

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DIMENSION_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULT_DAYS = 90
MAX_DAYS = 1096
MAX_SEGMENT_VALUE = 200
MAX_CURSOR = 1000
#: Days a panel can be about: the previous period and whole buckets around them stay real dates.
EARLIEST = date(1970, 1, 1)
LATEST = date(2200, 1, 1)


def invalid(parameter: str, message: str, value: object = None) -> RequestValidationError:
    """The 422 naming one query parameter, in the shape of FastAPI's own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}]
    )


TouchpointQuery = Annotated[
    str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
]
SinceQuery = Annotated[
    Timestamp | None,
    Query(description="from then on (inclusive): an ISO date (UTC midnight) or date-time"),
]
UntilQuery = Annotated[
    Timestamp | None,
    Query(description="up to then (exclusive): an ISO date (UTC midnight) or date-time"),
]
SegmentQuery = Annotated[
    str | None,
    Query(
        max_length=241,
        description="only the answers of one segment, as dimension:value, e.g. country:DK; a segment "
        "nobody answered in gives an empty result",
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="rows per page")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR, description="the next_cursor of the previous page, to get the next one"),
]


def checked_until(since: datetime | None, until: datetime | None) -> None:
    """For routes without defaults (the summary's): when both are given, since comes first."""
    if since is not None and until is not None and since >= until:
        raise invalid("since", "must be before until", since.isoformat())


def day_range(since: datetime | None, until: datetime | None, today: date) -> Period:
    """The whole UTC days the parameters select, with the defaults and limits above."""
    last = until.astimezone(UTC).date() if until is not None else today + timedelta(days=1)
    if not EARLIEST <= last <= LATEST:
        raise invalid("until", f"must be from {EARLIEST} to {LATEST}", str(last))
    first = since.astimezone(UTC).date() if since is not None else last - timedelta(days=DEFAULT_DAYS)
    if not EARLIEST <= first <= LATEST:
        raise invalid("since", f"must be from {EARLIEST} to {LATEST}", str(first))
    if first >= last:
        raise invalid("since", "must be a day before until (panels count whole UTC days)", str(first))
    if (last - first).days > MAX_DAYS:
        raise invalid("since", f"must be at most {MAX_DAYS} days (3 years) before until", str(first))
    return Period(first, last)


async def report_days(since: SinceQuery = None, until: UntilQuery = None) -> Period:
    """The dependency of the panels built from cells: the range in whole UTC days."""
    return day_range(since, until, datetime.now(UTC).date())


def segment_of(raw: str | None) -> Segment | None:
    """``dimension:value`` as a segment; None for everybody."""
    if raw is None:
        return None
    dimension, colon, value = raw.partition(":")
    if not colon or not DIMENSION_PATTERN.fullmatch(dimension):
        raise invalid("segment", "must be dimension:value, the dimension as country or store_id", raw)
    if not 1 <= len(value) <= MAX_SEGMENT_VALUE:
        raise invalid("segment", f"the value must be 1 to {MAX_SEGMENT_VALUE} characters", raw)
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise invalid("segment", "the value must not contain control characters", raw)
    return Segment(dimension, value)


async def report_segment(segment: SegmentQuery = None) -> Segment | None:
    return segment_of(segment)


def encode_cursor(position: list[object]) -> str:
    """An opaque token for the page after ``position`` (the last row's sort key)."""
    raw = json.dumps(position, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> list[object]:
    """The position a token stands for; 422 naming ``cursor`` when it is none of ours."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        position = json.loads(raw.decode())
    except (binascii.Error, ValueError) as error:
        raise invalid("cursor", "is not a cursor this API returned", token) from error
    if not isinstance(position, list):
        raise invalid("cursor", "is not a cursor this API returned", token)
    return position


@dataclass(frozen=True, slots=True)
class Moments:
    """From ``since`` (inclusive) to ``until`` (exclusive), to the microsecond, in UTC."""

    since: datetime
    until: datetime


def moment_range(since: datetime | None, until: datetime | None, today: date) -> Moments:
    """The range the parameters select where a panel keeps their time of day (the funnel's), with
    the defaults and limits of :func:`day_range`; only ``since`` before ``until`` is required."""
    lowest, highest = (_midnight(day) for day in (EARLIEST, LATEST))
    last = until.astimezone(UTC) if until is not None else _midnight(today + timedelta(days=1))
    if not lowest <= last <= highest:
        raise invalid("until", f"must be from {EARLIEST} to {LATEST}", last.isoformat())
    first = since.astimezone(UTC) if since is not None else last - timedelta(days=DEFAULT_DAYS)
    if not lowest <= first <= highest:
        raise invalid("since", f"must be from {EARLIEST} to {LATEST}", first.isoformat())
    if first >= last:
        raise invalid("since", "must be before until", first.isoformat())
    if last - first > timedelta(days=MAX_DAYS):
        raise invalid("since", f"must be at most {MAX_DAYS} days (3 years) before until", first.isoformat())
    return Moments(first, last)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def report_moments(since: SinceQuery = None, until: UntilQuery = None) -> Moments:
    """The dependency of the panels that keep a date-time's time of day."""
    return moment_range(since, until, datetime.now(UTC).date())
