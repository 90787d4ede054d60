"""The Net Promoter Score: classifying a 0-10 answer, tallying answers, and how sure the score is.

NPS is the promoters' share minus the detractors' share, in points from -100 to 100. Each answer
is worth +1 (promoter), 0 (passive) or -1 (detractor) and NPS is 100 times their mean, so the
confidence interval follows from the variance of that per-answer value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from libs.common.events import NpsCategory, nps_category

#: Two-sided 95 %: the normal approximation is what NPS reports conventionally quote.
CONFIDENCE_LEVEL = 0.95
_Z_95 = 1.96


#: The NPS groups are defined once, beside the score contract; scoring names them as it always has.
Category = NpsCategory
classify = nps_category


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    low: float
    high: float
    level: float = CONFIDENCE_LEVEL


@dataclass(frozen=True, slots=True)
class Tally:
    """How many answers fell in each category."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    def __post_init__(self) -> None:
        if min(self.promoters, self.passives, self.detractors) < 0:
            raise ValueError(f"counts cannot be negative: {self}")

    @classmethod
    def of(cls, scores: Iterable[int]) -> Tally:
        tally = cls()
        for score in scores:
            tally = tally.add(score)
        return tally

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        """None without answers: a score of 0 would claim a balance nobody expressed."""
        if self.responses == 0:
            return None
        return 100 * (self.promoters - self.detractors) / self.responses

    def by_category(self) -> dict[Category, int]:
        return {
            Category.PROMOTER: self.promoters,
            Category.PASSIVE: self.passives,
            Category.DETRACTOR: self.detractors,
        }

    def add(self, score: int) -> Tally:
        match classify(score):
            case Category.PROMOTER:
                return replace(self, promoters=self.promoters + 1)
            case Category.PASSIVE:
                return replace(self, passives=self.passives + 1)
            case Category.DETRACTOR:
                return replace(self, detractors=self.detractors + 1)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    def confidence_interval(self) -> ConfidenceInterval | None:
        """The 95 % interval around the NPS, clipped to the scale's ends; None without answers."""
        nps = self.nps
        if nps is None:
            return None
        n = self.responses
        promoter_share = self.promoters / n
        detractor_share = self.detractors / n
        # Mean of squares minus squared mean of the +1/0/-1 values; floating point can dip below 0.
        variance = max(0.0, promoter_share + detractor_share - (promoter_share - detractor_share) ** 2)
        margin = _Z_95 * 100 * math.sqrt(variance / n)
        return ConfidenceInterval(low=max(-100.0, nps - margin), high=min(100.0, nps + margin))
