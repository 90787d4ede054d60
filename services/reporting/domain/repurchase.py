"""Whether promoters really come back: the repurchase rate within N days of an answer, by the NPS
group of the answer's current score, from the tenant's own later purchases (``purchase.recorded.v1``).

- A purchase is a repurchase of an answer when it is strictly later than the answer and at most
  :data:`MATCH_WINDOW` (365 days) after it: the purchase that led to the survey came before the
  answer and never counts. Each answer keeps its *first* repurchase, the earliest such purchase,
  whatever order answers and purchases arrive in (:func:`first_repurchase`), so replaying either
  changes nothing.
- The rate within N days (1-365, default 90) counts only answers whose N days have fully passed
  (``responded_at <= now - N days``): a younger answer could still come back. Of them, those whose
  first repurchase is at most N days after the answer came back.
- The rate has a 95 % Wilson interval (small groups, and rates near 0 or 1, are common here).
- N is one of :data:`WINDOWS`: the daily rollup (``reporting.repurchase_days``) keeps, per
  touchpoint, UTC day of the answer and current score, the answers and how many came back within
  each of them (:func:`repurchase_tally`), moved by the projection whenever an answer is stored,
  revised or gets its first repurchase (:func:`services.reporting.domain.rollups.moves`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.common.events import NpsCategory, nps_category
from services.reporting.domain.followups import Interval, wilson_interval

#: How long after an answer a purchase still counts as coming back (the longest N one may ask for).
MATCH_WINDOW = timedelta(days=365)
DEFAULT_DAYS = 90
MIN_DAYS = 1
MAX_DAYS = 365
#: The windows the report offers (days): the rollup keeps a count for each.
WINDOWS = (7, 14, 30, 60, 90, 180, 365)
#: The groups in the order the report lists them.
GROUPS = (NpsCategory.PROMOTER, NpsCategory.PASSIVE, NpsCategory.DETRACTOR)


def is_repurchase(responded_at: datetime, purchased_at: datetime) -> bool:
    """Whether a purchase at ``purchased_at`` is a repurchase of an answer given at ``responded_at``."""
    return responded_at < purchased_at <= responded_at + MATCH_WINDOW


def first_repurchase(
    responded_at: datetime, known: datetime | None, purchases: Iterable[datetime]
) -> datetime | None:
    """An answer's first repurchase once ``purchases`` are known besides the one it has (``known``):
    the earliest that counts. The earliest of a set is the same however it is split into batches
    and in whatever order they come, and taking a purchase twice changes nothing."""
    candidates = [at for at in purchases if is_repurchase(responded_at, at)]
    if known is not None:
        candidates.append(known)
    return min(candidates, default=None)


def answered_by(now: datetime, days: int) -> datetime:
    """The latest answer whose ``days`` have fully passed at ``now`` (inclusive)."""
    check_days(days)
    return now - timedelta(days=days)


def came_back(responded_at: datetime, repurchased_at: datetime | None, days: int) -> bool:
    """Whether an answer's customer bought again within ``days`` of answering."""
    return repurchased_at is not None and repurchased_at - responded_at <= timedelta(days=days)


def check_days(days: int) -> int:
    if isinstance(days, bool) or not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days is a whole number from {MIN_DAYS} to {MAX_DAYS}, not {days!r}")
    return days


def check_window(days: int) -> int:
    """``days`` if the report offers that window (:data:`WINDOWS`)."""
    if check_days(days) not in WINDOWS:
        raise ValueError(f"days is one of {', '.join(map(str, WINDOWS))}, not {days}")
    return days


@dataclass(frozen=True, slots=True)
class RepurchaseTally:
    """What a group of answers adds up to in the rollup: the answers, and of them how many came
    back within each of :data:`WINDOWS` (in that order)."""

    answers: int = 0
    came_back: tuple[int, ...] = (0,) * len(WINDOWS)

    def __add__(self, other: RepurchaseTally) -> RepurchaseTally:
        return RepurchaseTally(
            self.answers + other.answers,
            tuple(mine + theirs for mine, theirs in zip(self.came_back, other.came_back, strict=True)),
        )

    def __neg__(self) -> RepurchaseTally:
        return RepurchaseTally(-self.answers, tuple(-count for count in self.came_back))

    def __bool__(self) -> bool:
        return self.answers != 0 or any(self.came_back)


def repurchase_tally(responded_at: datetime, repurchased_at: datetime | None) -> RepurchaseTally:
    """What one answer adds to its row of the rollup."""
    return RepurchaseTally(1, tuple(int(came_back(responded_at, repurchased_at, days)) for days in WINDOWS))


@dataclass(frozen=True, slots=True)
class GroupCount:
    """Of a group's answers whose window has passed, how many came back within it."""

    answers: int
    repurchased: int

    def __post_init__(self) -> None:
        if not 0 <= self.repurchased <= self.answers:
            raise ValueError(f"repurchased must be from 0 to answers: {self.repurchased} of {self.answers}")


@dataclass(frozen=True, slots=True)
class GroupRate:
    group: NpsCategory
    answers: int
    repurchased: int
    #: ``repurchased / answers``; None without answers.
    rate: float | None
    interval: Interval | None


@dataclass(frozen=True, slots=True)
class ScoreCount:
    """The answers of one current score whose window has passed, and how many came back."""

    score: int
    answers: int
    repurchased: int


def counts_by_group(rows: Iterable[ScoreCount]) -> dict[NpsCategory, GroupCount]:
    """Scores summed into their NPS groups (:func:`libs.common.events.nps_category`)."""
    answers = dict.fromkeys(GROUPS, 0)
    repurchased = dict.fromkeys(GROUPS, 0)
    for row in rows:
        group = nps_category(row.score)
        answers[group] += row.answers
        repurchased[group] += row.repurchased
    return {group: GroupCount(answers[group], repurchased[group]) for group in GROUPS}


def rate_of(group: NpsCategory, count: GroupCount) -> GroupRate:
    rate = count.repurchased / count.answers if count.answers else None
    return GroupRate(
        group=group,
        answers=count.answers,
        repurchased=count.repurchased,
        rate=rate,
        interval=wilson_interval(count.repurchased, count.answers),
    )


def rates(counts: Mapping[NpsCategory, GroupCount]) -> list[GroupRate]:
    """Every group, promoters first; a group without answers has no rate."""
    return [rate_of(group, counts.get(group, GroupCount(0, 0))) for group in GROUPS]
