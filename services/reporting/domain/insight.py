"""The insight panels' rules over score cells: which cells make up a range of days, the trend's
buckets, the period a range is compared with, and a score as the API shows it.

Cells (``nps.updated.v1``, kept in ``reporting.nps_cells``) count each answer once per UTC day,
ISO week (Monday to Sunday) and calendar month; a range of whole days is the sum of the month
cells of the months it holds whole and the day cells of the rest, so a 3-year range reads ~40
cells per group rather than ~1,100. Everything here is pure: dates in, dates out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from libs.common.nps import Counts, Interval, interval

Bucket = Literal["day", "week", "month"]
#: The trend draws at most this many points.
MAX_POINTS = 400
#: The scores a distribution's positions stand for are 0..10; promoters 9-10, detractors 0-6.
_PROMOTER_FROM, _PASSIVE_FROM = 9, 7


@dataclass(frozen=True, slots=True)
class Span:
    """The cells of one bucket whose start lies in [first, stop): each a whole bucket."""

    bucket: Bucket
    first: date
    stop: date


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days from ``since`` (inclusive) to ``until`` (exclusive)."""

    since: date
    until: date

    def __post_init__(self) -> None:
        if self.since >= self.until:
            raise ValueError(f"a period ends after it starts: {self.since} .. {self.until}")

    @property
    def days(self) -> int:
        return (self.until - self.since).days

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.since - timedelta(days=self.days), self.since)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def bucket_start(bucket: Bucket, day: date) -> date:
    """The start of the bucket ``day`` lies in: itself, its week's Monday, or its month's first."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    return month_start(day)


def bucket_end(bucket: Bucket, start: date) -> date:
    """The (exclusive) end of the bucket starting at ``start``."""
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    return next_month(start)


def plan(period: Period) -> list[Span]:
    """The cells whose sum is exactly the period: month cells for the months it holds whole, day
    cells for the days before the first and after the last of them. Each day of the period is in
    exactly one cell of the plan, and no other day is."""
    first_month = period.since if period.since.day == 1 else next_month(period.since)
    last_month = month_start(period.until)
    if first_month >= last_month:
        return [Span("day", period.since, period.until)]
    spans = [
        Span("day", period.since, first_month),
        Span("month", first_month, last_month),
        Span("day", last_month, period.until),
    ]
    return [span for span in spans if span.first < span.stop]


def plan_with_weeks(period: Period) -> list[Span]:
    """:func:`plan`, with the days on either side of the whole months read as the ISO weeks they
    hold whole and the days left over (at most 6 at each end of each run of days): far fewer cells
    where every value of a dimension is summed (the segments table). Each day of the period is in
    exactly one cell of the plan, and no other day is."""
    spans: list[Span] = []
    for span in plan(period):
        if span.bucket != "day":
            spans.append(span)
            continue
        first_week = bucket_start("week", span.first + timedelta(days=6))
        stop_week = bucket_start("week", span.stop)
        if first_week >= stop_week:
            spans.append(span)
            continue
        spans += [
            Span("day", span.first, first_week),
            Span("week", first_week, stop_week),
            Span("day", stop_week, span.stop),
        ]
    return [span for span in spans if span.first < span.stop]


def buckets(bucket: Bucket, period: Period) -> list[tuple[date, date]]:
    """(start, end) of every whole bucket overlapping the period, in order, empty ones included.

    Raises ValueError when there would be more than :data:`MAX_POINTS`."""
    found: list[tuple[date, date]] = []
    start = bucket_start(bucket, period.since)
    while start < period.until:
        if len(found) == MAX_POINTS:
            raise ValueError(
                f"{bucket} buckets over {period.since} .. {period.until} are more than {MAX_POINTS}: "
                "choose a longer bucket or a shorter range"
            )
        end = bucket_end(bucket, start)
        found.append((start, end))
        start = end
    return found


def counts_of(distribution: Sequence[int]) -> Counts:
    """Answers per score 0-10 as promoters, passives and detractors."""
    if len(distribution) != 11:
        raise ValueError(f"a distribution has 11 counts (scores 0-10), not {len(distribution)}")
    return Counts(
        promoters=sum(distribution[_PROMOTER_FROM:]),
        passives=sum(distribution[_PASSIVE_FROM:_PROMOTER_FROM]),
        detractors=sum(distribution[:_PASSIVE_FROM]),
    )


def added(distributions: Sequence[Sequence[int]]) -> list[int]:
    """The distributions summed score by score (zeros when there are none)."""
    total = [0] * 11
    for distribution in distributions:
        for score, answers in enumerate(distribution):
            total[score] += answers
    return total


@dataclass(frozen=True, slots=True)
class Score:
    """A score as every panel shows it: counts, the NPS to 2 decimals, its 95 % interval, and
    whether there are too few answers (fewer than ``libs.common.nps.MIN_RESPONSES``) to trust it."""

    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    interval: Interval | None
    too_few: bool

    @classmethod
    def of(cls, counts: Counts) -> Score:
        found = interval(counts)
        return cls(
            responses=counts.responses,
            promoters=counts.promoters,
            passives=counts.passives,
            detractors=counts.detractors,
            nps=None if counts.nps is None else round(counts.nps, 2),
            interval=None if found is None else rounded(found),
            too_few=counts.too_few,
        )

    @classmethod
    def of_distribution(cls, distribution: Sequence[int]) -> Score:
        return cls.of(counts_of(distribution))


def rounded(found: Interval) -> Interval:
    return Interval(low=round(found.low, 2), high=round(found.high, 2), level=found.level)


def sparkline(
    weeks: Sequence[tuple[date, date]], distributions: Mapping[date, Sequence[int]]
) -> list[float | None]:
    """The NPS (2 decimals) of each week in order; None for a week without answers."""
    return [counts_nps(distributions.get(start)) for start, _ in weeks]


def counts_nps(distribution: Sequence[int] | None) -> float | None:
    if distribution is None:
        return None
    nps = counts_of(distribution).nps
    return None if nps is None else round(nps, 2)


SegmentSort = Literal["-responses", "responses", "nps", "-nps", "value", "-value"]


def sort_position(
    sort: SegmentSort, responses: int, nps: float | None, touchpoint: str, value: str
) -> list[object]:
    """A segments row's place in the order ``sort`` gives, as the next page's cursor holds it: the
    sort key, then touchpoint and value (ascending) to break ties. Rows without a score come last
    whichever way the score is sorted."""
    if sort in ("responses", "-responses"):
        return [responses, touchpoint, value]
    if sort in ("nps", "-nps"):
        return [nps is None, 0.0 if nps is None else nps, touchpoint, value]
    return [value, touchpoint]


#: What a cursor may hold: counts a BIGINT holds, finite scores, text Postgres can compare.
_LARGEST_COUNT = 2**62
_LONGEST_TEXT = 200


def _is(kind: type, item: object) -> bool:
    # JSON's true is a bool, which Python also counts as an int; and 3 is a fine float.
    if isinstance(item, bool):
        return kind is bool
    if kind is int:
        return isinstance(item, int) and 0 <= item <= _LARGEST_COUNT
    if kind is float:
        return isinstance(item, int | float) and math.isfinite(item) and -100 <= item <= 100
    return isinstance(item, str) and len(item) <= _LONGEST_TEXT and "\x00" not in item


def position_fits(sort: SegmentSort, position: Sequence[object]) -> bool:
    """Whether a decoded cursor is a position of ``sort``."""
    kinds: tuple[type, ...] = (
        (int, str, str)
        if sort in ("responses", "-responses")
        else (bool, float, str, str)
        if sort in ("nps", "-nps")
        else (str, str)
    )
    return len(position) == len(kinds) and all(
        _is(kind, item) for kind, item in zip(kinds, position, strict=True)
    )
