"""Cells: the answers of one touchpoint, segment and time bucket, as counts of each score 0-10.

An answer counts in (1 + its segments) x 3 cells of its touchpoint: everybody and each of its
segments, in the UTC day, ISO week (from Monday) and calendar month of the FIRST answer's time. A
revision keeps that date and those segments, so it moves the answer inside the very cells it was
counted in: the first count can be undone exactly, whatever the tenant declared or the calendar
says since. Each cell keeps 11 counts rather than 3 because a distribution adds up over days and
segments while a score does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Generic, Literal, TypeVar

from libs.common.events import HIGHEST_SCORE, LOWEST_SCORE
from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer, TallyChange, latest
from services.scoring.domain.segments import Segment

Bucket = Literal["day", "week", "month"]
BUCKETS: tuple[Bucket, ...] = ("day", "week", "month")
SCORES = range(LOWEST_SCORE, HIGHEST_SCORE + 1)
#: The rolling windows ``GET /v1/nps`` offers, in UTC days up to and including today.
ROLLING_DAYS = {"7d": 7, "30d": 30, "90d": 90}


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def bucket_start(bucket: Bucket, day: date) -> date:
    """The first day of the bucket ``day`` falls in: itself, its ISO week's Monday, its month's 1st."""
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def bucket_end(bucket: Bucket, start: date) -> date:
    """The day after the bucket that starts on ``start`` (ends are exclusive)."""
    if bucket == "week":
        return start + timedelta(days=7)
    if bucket == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def rolling_window(today: date, days: int) -> tuple[date, date]:
    """The last ``days`` UTC days including today, as (first day, the day after today)."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Bins:
    """Answers per score 0-10; signed when it is a change rather than a cell's state."""

    counts: tuple[int, ...] = (0,) * len(SCORES)

    @classmethod
    def one(cls, score: int, by: int = 1) -> Bins:
        return cls(tuple(by if each == score else 0 for each in SCORES))

    def __add__(self, other: Bins) -> Bins:
        return Bins(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    @property
    def is_empty(self) -> bool:
        return not any(self.counts)

    def tally_change(self) -> TallyChange:
        return TallyChange(
            promoters=sum(self.counts[9:]), passives=sum(self.counts[7:9]), detractors=sum(self.counts[:7])
        )

    def tally(self) -> Tally:
        """The counts by category of a cell's state (never negative)."""
        change = self.tally_change()
        return Tally(change.promoters, change.passives, change.detractors)


ZERO = Bins()


@dataclass(frozen=True, slots=True, order=True)
class CellKey:
    """One cell. ``dimension`` and ``value`` are ``''`` for everybody."""

    tenant_id: uuid.UUID
    touchpoint: str
    dimension: str
    value: str
    bucket: Bucket
    start: date

    @property
    def segment(self) -> Segment | None:
        return Segment(self.dimension, self.value) if self.dimension else None

    @property
    def end(self) -> date:
        return bucket_end(self.bucket, self.start)


@dataclass(frozen=True, slots=True)
class CountedAnswer:
    """An answer as counted: its current version, and where its first version was counted."""

    answer: HeldAnswer
    day: date
    segments: tuple[Segment, ...] = ()
    #: The 12-month spend when asked, as (currency, minor units) in currency order (domain.spend).
    spend: tuple[tuple[str, int], ...] = ()


def cells_of(
    tenant_id: uuid.UUID, touchpoint: str, day: date, segments: tuple[Segment, ...]
) -> list[CellKey]:
    """The cells an answer of that day and those segments counts in, everybody first."""
    groups = [("", ""), *((segment.dimension, segment.value) for segment in segments)]
    return [
        CellKey(tenant_id, touchpoint, dimension, value, bucket, bucket_start(bucket, day))
        for dimension, value in dict.fromkeys(groups)
        for bucket in BUCKETS
    ]


def first_count(tenant_id: uuid.UUID, counted: CountedAnswer) -> dict[CellKey, Bins]:
    """A new answer adds one to its score in each of its cells."""
    answer = counted.answer
    return {
        key: Bins.one(answer.score)
        for key in cells_of(tenant_id, answer.touchpoint, counted.day, counted.segments)
    }


def revision(tenant_id: uuid.UUID, held: CountedAnswer, arriving: HeldAnswer) -> dict[CellKey, Bins] | None:
    """What a version of a counted answer changes per cell: ``None`` when it is not newer than the
    one held; no cells when its score stays (a comment added). It leaves the first count's cells
    (its date, its segments) and enters the same cells of its touchpoint with its new score."""
    old = held.answer
    if latest(old, arriving) is old:
        return None
    changes = {
        key: Bins.one(old.score, -1) for key in cells_of(tenant_id, old.touchpoint, held.day, held.segments)
    }
    for key in cells_of(tenant_id, arriving.touchpoint, held.day, held.segments):
        changes[key] = changes.get(key, ZERO) + Bins.one(arriving.score)
    return {key: change for key, change in changes.items() if not change.is_empty}


def all_time(changes: Mapping[CellKey, Bins]) -> dict[str, Bins]:
    """The change to each touchpoint's all-time counts: its everybody day cells' changes."""
    touchpoints: dict[str, Bins] = {}
    for key, change in changes.items():
        if key.bucket == "day" and not key.dimension:
            touchpoints[key.touchpoint] = touchpoints.get(key.touchpoint, ZERO) + change
    return {touchpoint: change for touchpoint, change in touchpoints.items() if not change.is_empty}


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class CellChange:
    bins: Bins
    #: How many answers were counted in or moved inside the cell: its version grows by that much.
    steps: int


@dataclass(slots=True)
class Rollup(Generic[K]):
    """A batch's changes summed per cell (or per touchpoint), each answer one step where it changed."""

    changes: dict[K, CellChange] = field(default_factory=dict)

    def add(self, changes: Mapping[K, Bins]) -> None:
        for key, bins in changes.items():
            if bins.is_empty:
                continue
            held = self.changes.get(key, CellChange(ZERO, 0))
            self.changes[key] = CellChange(held.bins + bins, held.steps + 1)

    def changed(self) -> dict[K, CellChange]:
        """The cells whose counts changed (a batch's moves can cancel out: those stay as they are)."""
        return {key: change for key, change in self.changes.items() if not change.bins.is_empty}
