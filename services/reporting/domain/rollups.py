"""The daily rollup of answers (``reporting.answer_days``) and how a report reads it.

Each answer counts once in the row of its tenant, touchpoint, UTC day of ``responded_at`` (the
first answer's time, which revisions keep) and current score, with its follow-up questions. The
projection keeps the rollup in step with the answers table by deltas: what the answer's stored
version contributes now, minus what the version held before contributed. A revision that replaces
the score (or the touchpoint) moves the answer between rows; one that adds the follow-up questions
adds to them; a repeated or older revision changes no row, so nothing changes.

A report over ``since`` .. ``until`` reads the whole UTC days in between from the rollup and only
the partial first and last day (a ``since`` or ``until`` that is not midnight) from the answers
themselves: at most two days of raw rows, however long the range. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, TypeVar

from libs.common.events import NpsCategory, nps_category

from .followups import Interval, wilson_interval


@dataclass(frozen=True, slots=True)
class Tally:
    """What a group of answers adds up to: answers, and each follow-up question's answers."""

    answers: int = 0
    recommended_yes: int = 0
    recommended_no: int = 0
    csat_total: int = 0
    csat_answers: int = 0
    effort_total: int = 0
    effort_answers: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, name) + getattr(other, name) for name in _TALLY_FIELDS))

    def __neg__(self) -> Tally:
        return Tally(*(-getattr(self, name) for name in _TALLY_FIELDS))

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in _TALLY_FIELDS)

    @property
    def recommended_answers(self) -> int:
        return self.recommended_yes + self.recommended_no


_TALLY_FIELDS = tuple(field.name for field in fields(Tally))


@dataclass(frozen=True, slots=True)
class AnswerVersion:
    """The parts of a stored answer the rollup counts."""

    touchpoint: str
    responded_at: datetime
    score: int
    revision: int
    recommended: bool | None = None
    csat: int | None = None
    effort: int | None = None
    #: The answer's first repurchase (see :mod:`.repurchase`), which revisions keep.
    repurchased_at: datetime | None = None


#: A rollup row's key within a tenant: (touchpoint, UTC day, score).
DayKey = tuple[str, date, int]


def day_of(moment: datetime) -> date:
    """The UTC day of an aware time."""
    return moment.astimezone(UTC).date()


def row_of(answer: AnswerVersion) -> DayKey:
    return (answer.touchpoint, day_of(answer.responded_at), answer.score)


def tally_of(answer: AnswerVersion) -> Tally:
    """What one answer adds to its row."""
    return Tally(
        answers=1,
        recommended_yes=int(answer.recommended is True),
        recommended_no=int(answer.recommended is False),
        csat_total=answer.csat or 0,
        csat_answers=int(answer.csat is not None),
        effort_total=answer.effort or 0,
        effort_answers=int(answer.effort is not None),
    )


def kept(held: AnswerVersion | None, arriving: AnswerVersion) -> AnswerVersion:
    """The version stored once ``arriving`` meets ``held``, by the answers table's rule: a higher
    revision replaces what it carries, but the first answer's time stays."""
    if held is None:
        return arriving
    if arriving.revision <= held.revision:
        return held
    return AnswerVersion(
        touchpoint=arriving.touchpoint,
        responded_at=held.responded_at,
        score=arriving.score,
        revision=arriving.revision,
        recommended=arriving.recommended,
        csat=arriving.csat,
        effort=arriving.effort,
        repurchased_at=held.repurchased_at,
    )


class Counts(Protocol):
    """What a daily rollup keeps of a group of answers: counts that add, negate and may be zero."""

    def __add__(self: CountsT, other: CountsT, /) -> CountsT: ...

    def __neg__(self: CountsT) -> CountsT: ...

    def __bool__(self) -> bool: ...


CountsT = TypeVar("CountsT", bound=Counts)


def moves(
    held: AnswerVersion | None, stored: AnswerVersion, counted: Callable[[AnswerVersion], CountsT]
) -> dict[DayKey, CountsT]:
    """How a daily rollup's rows (keyed like this one) change when an answer held as ``held`` is
    stored as ``stored``, ``counted`` being what one answer adds to its row: only the rows that
    change, by how much."""
    changes: dict[DayKey, CountsT] = {row_of(stored): counted(stored)}
    if held is not None:
        before = row_of(held)
        taken = -counted(held)
        changes[before] = changes[before] + taken if before in changes else taken
    return {row: change for row, change in changes.items() if change}


def delta(held: AnswerVersion | None, stored: AnswerVersion) -> dict[DayKey, Tally]:
    """How the rollup's rows change when an answer held as ``held`` is stored as ``stored``:
    only the rows that change, by how much."""
    return moves(held, stored, tally_of)


@dataclass(frozen=True, slots=True)
class Edge:
    """Raw answers from ``since`` (inclusive) to ``until`` (exclusive), inside one UTC day."""

    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Where a range's answers are read: the rollup's whole days from ``first_day`` (None: from
    the beginning) to ``stop_day`` (exclusive; None: onwards) unless ``whole_days`` is False, and
    the raw answers of each edge."""

    whole_days: bool
    first_day: date | None
    stop_day: date | None
    edges: tuple[Edge, ...]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def read_plan(since: datetime | None, until: datetime | None) -> ReadPlan:
    """The whole days and partial edges whose answers are exactly those of ``since`` (inclusive)
    to ``until`` (exclusive), either open. Each edge lies inside one UTC day; there are at most two."""
    since = None if since is None else since.astimezone(UTC)
    until = None if until is None else until.astimezone(UTC)
    if since is not None and since.date() == date.max:
        # No midnight follows: the rest of the calendar's last day is all there is.
        end = datetime.max.replace(tzinfo=UTC) if until is None else until
        return ReadPlan(False, None, None, (Edge(since, end),) if since < end else ())
    # The first midnight from since on, and the last up to until.
    first = None if since is None else _midnight(since.date())
    if first is not None and since is not None and first < since:
        first += timedelta(days=1)
    stop = None if until is None else _midnight(until.date())
    if since is not None and until is not None and first is not None and stop is not None and first > stop:
        # Both inside one day: that part of it only.
        return ReadPlan(False, first.date(), stop.date(), (Edge(since, until),) if since < until else ())
    edges: list[Edge] = []
    if since is not None and first is not None and since < first:
        edges.append(Edge(since, first))
    if until is not None and stop is not None and stop < until:
        edges.append(Edge(stop, until))
    whole = first is None or stop is None or first < stop
    return ReadPlan(
        whole, None if first is None else first.date(), None if stop is None else stop.date(), tuple(edges)
    )


@dataclass(frozen=True, slots=True)
class RecommendedRow:
    """Of the answers of one score (or NPS group), how many said whether they had recommended us
    in the last 12 months, how many said yes, the share of yes and its 95 % Wilson interval."""

    answered: int
    recommended: int
    share: float | None
    interval: Interval | None


def recommended_row(tally: Tally) -> RecommendedRow:
    answered = tally.recommended_answers
    return RecommendedRow(
        answered=answered,
        recommended=tally.recommended_yes,
        share=tally.recommended_yes / answered if answered else None,
        interval=wilson_interval(tally.recommended_yes, answered),
    )


#: The NPS groups in the order the panel lists them.
GROUPS = (NpsCategory.PROMOTER, NpsCategory.PASSIVE, NpsCategory.DETRACTOR)


def recommended_by_score(by_score: Mapping[int, Tally]) -> list[RecommendedRow]:
    """One row per score 0-10, empty ones included."""
    return [recommended_row(by_score.get(score, Tally())) for score in range(11)]


def recommended_by_group(by_score: Mapping[int, Tally]) -> dict[NpsCategory, RecommendedRow]:
    """One row per NPS group (promoters 9-10, passives 7-8, detractors 0-6), in :data:`GROUPS`' order."""
    totals = dict.fromkeys(GROUPS, Tally())
    for score, tally in by_score.items():
        totals[nps_category(score)] += tally
    return {group: recommended_row(total) for group, total in totals.items()}
