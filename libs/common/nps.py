"""How sure a Net Promoter Score is, and whether two of them really differ: the one definition.

Scoring announces scores with their interval and reporting sums the announced counts over the
periods a person asks for; both must compute the interval the same way, or the page and the API
would disagree about one number. This module is that one way, beside :func:`nps_category` in the
contracts: it holds no business rule of either service, only the arithmetic of the score.

The method is the **adjusted Wald** interval (Rocks, "Interval Estimation for the Net Promoter
Score", The American Statistician 70(4), 2016; recommended by MeasuringU after testing it on real
data): add 3 answers to n, of which 3/4 promoter and 3/4 detractor, then take the normal interval
of the difference of the two shares with the variance of the +1/0/-1 values. Unlike the plain
(Wald) interval it does not collapse to a point when every answer agrees: 12 promoters out of 12
give "somewhere between 54 and 100", not "exactly 100". The interval is centred on the adjusted
score, so for very small n the raw score can lie outside it; cells with fewer than
:data:`MIN_RESPONSES` answers are marked as too few to show.

Two periods are compared with the adjusted Wald interval of the difference (each period adjusted
on its own, variances added, as for two independent samples); the change is significant at 95 %
when that interval excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Two-sided 95 %.
CONFIDENCE_LEVEL = 0.95
Z_95 = 1.959963984540054
#: Below this many answers a score is shown as "too few answers": its interval is wider than about
#: +/- 50 points, and one answer moves the score by 10 or more.
MIN_RESPONSES = 10
#: The adjustment: answers added to n, and the part of them added to each of the two extremes.
_ADDED_ANSWERS = 3.0
_ADDED_PER_EXTREME = 0.75


@dataclass(frozen=True, slots=True)
class Counts:
    """Answers of one group (a touchpoint, a segment, a period) by category."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    def __post_init__(self) -> None:
        if min(self.promoters, self.passives, self.detractors) < 0:
            raise ValueError(f"counts cannot be negative: {self}")

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        """-100 to 100; None without answers (a score of 0 would claim a balance nobody gave)."""
        if self.responses == 0:
            return None
        return 100 * (self.promoters - self.detractors) / self.responses

    @property
    def too_few(self) -> bool:
        """Too few answers for the score to mean much: show n, not the score."""
        return self.responses < MIN_RESPONSES

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    level: float = CONFIDENCE_LEVEL


@dataclass(frozen=True, slots=True)
class _Adjusted:
    nps: float
    variance: float


def _adjusted(counts: Counts) -> _Adjusted:
    n = counts.responses + _ADDED_ANSWERS
    promoter_share = (counts.promoters + _ADDED_PER_EXTREME) / n
    detractor_share = (counts.detractors + _ADDED_PER_EXTREME) / n
    difference = promoter_share - detractor_share
    # The variance of one +1/0/-1 answer, over n; floating point can dip just below 0.
    variance = max(0.0, promoter_share + detractor_share - difference**2) / n
    return _Adjusted(100 * difference, 100 * 100 * variance)


def _clipped(centre: float, margin: float, bound: float) -> Interval:
    return Interval(low=max(-bound, centre - margin), high=min(bound, centre + margin))


def interval(counts: Counts) -> Interval | None:
    """The 95 % adjusted Wald interval of the score, within -100..100; None without answers."""
    if counts.responses == 0:
        return None
    adjusted = _adjusted(counts)
    return _clipped(adjusted.nps, Z_95 * math.sqrt(adjusted.variance), 100.0)


@dataclass(frozen=True, slots=True)
class Change:
    """How a score moved from one period (``before``) to another (``after``)."""

    #: after minus before, in points (raw scores); None when either period has no answers.
    difference: float | None
    interval: Interval | None
    #: The interval excludes 0: the move is unlikely to be noise (95 %).
    significant: bool
    #: Either period has too few answers for the comparison to mean much.
    too_few: bool


def change(before: Counts, after: Counts) -> Change:
    """The difference between two periods' scores, its 95 % interval, and whether it is real."""
    too_few = before.too_few or after.too_few
    if before.nps is None or after.nps is None:
        return Change(difference=None, interval=None, significant=False, too_few=True)
    a, b = _adjusted(before), _adjusted(after)
    centre = b.nps - a.nps
    bounds = _clipped(centre, Z_95 * math.sqrt(a.variance + b.variance), 200.0)
    significant = bounds.low > 0 or bounds.high < 0
    return Change(after.nps - before.nps, bounds, significant=significant, too_few=too_few)
