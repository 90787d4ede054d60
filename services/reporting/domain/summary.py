"""What a tenant's summary says, computed from counts the read model keeps.

Scoring owns the authoritative score; this is the same published formula applied to the answers
reporting has seen, so a summary can be cut by date without asking another service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: A follow-up case someone still has to act on.
OPEN_STATUSES = frozenset({"open", "contacted"})
RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class ScoreCounts:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @classmethod
    def from_histogram(cls, answers_by_score: Mapping[int, int]) -> ScoreCounts:
        """Promoters answered 9-10, passives 7-8, detractors 0-6."""
        return cls(
            promoters=sum(n for score, n in answers_by_score.items() if score >= 9),
            passives=sum(n for score, n in answers_by_score.items() if 7 <= score <= 8),
            detractors=sum(n for score, n in answers_by_score.items() if score <= 6),
        )

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        if self.responses == 0:
            return None
        return 100 * (self.promoters - self.detractors) / self.responses

    def __add__(self, other: ScoreCounts) -> ScoreCounts:
        return ScoreCounts(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )


@dataclass(frozen=True, slots=True)
class CaseCounts:
    open: int = 0
    breached: int = 0
    resolved: int = 0

    @classmethod
    def from_groups(cls, groups: Iterable[tuple[str, bool, int]]) -> CaseCounts:
        """From (status, breached, number of cases) groups. A breach stops mattering once the
        case is resolved; until then the case is both open and breached."""
        open_cases = breached = resolved = 0
        for status, is_breached, cases in groups:
            if status in OPEN_STATUSES:
                open_cases += cases
                breached += cases if is_breached else 0
            elif status == RESOLVED:
                resolved += cases
        return cls(open=open_cases, breached=breached, resolved=resolved)

    def __add__(self, other: CaseCounts) -> CaseCounts:
        return CaseCounts(
            self.open + other.open, self.breached + other.breached, self.resolved + other.resolved
        )


def response_rate(responses: int, invitations_sent: int) -> float | None:
    """Answers per invitation sent; None when nothing was sent, as there is no rate to speak of."""
    if invitations_sent <= 0:
        return None
    return responses / invitations_sent


@dataclass(frozen=True, slots=True)
class Summary:
    scores: ScoreCounts = field(default_factory=ScoreCounts)
    invitations_sent: int = 0
    cases: CaseCounts = field(default_factory=CaseCounts)

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.scores.responses, self.invitations_sent)

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            self.scores + other.scores,
            self.invitations_sent + other.invitations_sent,
            self.cases + other.cases,
        )
