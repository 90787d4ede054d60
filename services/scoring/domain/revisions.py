"""An answer as scoring holds it, and what a newer revision of it does to the tallies.

``survey.responded`` announces an answer (revision 1); ``survey.response_updated`` repeats the
whole answer with a higher revision when the respondent adds to it or, inside the grace period,
replaces the score. Only a higher revision than the one held counts, so duplicates, redeliveries
and reordering change nothing. A replaced score moves the answer from its old category to its new
one: the number of answers stays, the balance changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.scoring.domain.nps import Category, classify

#: ``survey.responded`` carries no revision: it is the first.
FIRST_REVISION = 1


@dataclass(frozen=True, slots=True)
class HeldAnswer:
    """The current version of one answer: enough to know which category it is counted in."""

    touchpoint: str
    score: int
    revision: int

    @property
    def category(self) -> Category:
        return classify(self.score)


def latest(held: HeldAnswer, arriving: HeldAnswer) -> HeldAnswer:
    """The newer of two versions of one answer; on equal revisions the one held first stays, so
    applying the same version twice is a no-op."""
    return arriving if arriving.revision > held.revision else held


@dataclass(frozen=True, slots=True)
class TallyChange:
    """Signed changes to one touchpoint's counts. Unlike a :class:`Tally` it may go negative."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @classmethod
    def counting(cls, category: Category, by: int = 1) -> TallyChange:
        match category:
            case Category.PROMOTER:
                return cls(promoters=by)
            case Category.PASSIVE:
                return cls(passives=by)
            case Category.DETRACTOR:
                return cls(detractors=by)

    @property
    def is_empty(self) -> bool:
        return self.promoters == self.passives == self.detractors == 0

    def __add__(self, other: TallyChange) -> TallyChange:
        return TallyChange(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )


def first_count(answer: HeldAnswer) -> dict[str, TallyChange]:
    """An answer scoring has not held before counts once, at its touchpoint."""
    return {answer.touchpoint: TallyChange.counting(answer.category)}


def revise(held: HeldAnswer, arriving: HeldAnswer) -> dict[str, TallyChange] | None:
    """What a version of an already counted answer changes, per touchpoint; ``None`` when it is
    not newer than the one held (nothing to store). An empty dict means: store the newer version,
    but the counts stay (a comment added, or a score replaced within its category)."""
    if latest(held, arriving) is held:
        return None
    if (held.touchpoint, held.category) == (arriving.touchpoint, arriving.category):
        return {}
    changes: dict[str, TallyChange] = {held.touchpoint: TallyChange.counting(held.category, -1)}
    changes[arriving.touchpoint] = changes.get(arriving.touchpoint, TallyChange()) + TallyChange.counting(
        arriving.category
    )
    return {touchpoint: change for touchpoint, change in changes.items() if not change.is_empty}
