"""The Net Promoter Score: classifying a 0-10 answer, tallying answers, and how sure the score is.

NPS is the promoters' share minus the detractors' share, in points from -100 to 100. The
confidence interval is the adjusted Wald interval of ``libs/common/nps.py``, which reporting uses
too, so the API and the report page agree on every interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from libs.common import nps as maths
from libs.common.events import NpsCategory, nps_category

CONFIDENCE_LEVEL = maths.CONFIDENCE_LEVEL


#: The NPS groups are defined once, beside the score contract; scoring names them as it always has.
Category = NpsCategory
classify = nps_category


ConfidenceInterval = maths.Interval


@dataclass(frozen=True, slots=True)
class Tally(maths.Counts):
    """How many answers fell in each category: the shared counts, with the score, plus counting."""

    @classmethod
    def of(cls, scores: Iterable[int]) -> Tally:
        tally = cls()
        for score in scores:
            tally = tally.add(score)
        return tally

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

    def __add__(self, other: maths.Counts) -> Tally:
        return Tally(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    def confidence_interval(self) -> ConfidenceInterval | None:
        """The 95 % interval around the NPS (adjusted Wald), within -100..100; None without answers."""
        return maths.interval(self)
