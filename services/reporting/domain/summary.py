"""What a tenant's summary says, computed from counts the read model keeps.

Scoring owns the authoritative score; this is the same published formula applied to the answers
reporting has seen, so a summary can be cut by date without asking another service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from libs.common.events import NpsCategory, nps_category

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
        """Each score counted in its NPS group (:func:`libs.common.events.nps_category`)."""
        by_category = dict.fromkeys(NpsCategory, 0)
        for score, n in answers_by_score.items():
            by_category[nps_category(score)] += n
        return cls(
            promoters=by_category[NpsCategory.PROMOTER],
            passives=by_category[NpsCategory.PASSIVE],
            detractors=by_category[NpsCategory.DETRACTOR],
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


#: An invitation's funnel, in the order a person reads it. Each counts invitations, not events.
FUNNEL_STEPS = (
    "sent",
    "opened",
    "machine_opened",
    "clicked",
    "responded",
    "reminded",
    "bounced",
    "unsubscribed",
    "expired",
    "failed",
)


@dataclass(frozen=True, slots=True)
class Funnel:
    """How many invitations reached each step (each invitation at most once per step)."""

    sent: int = 0
    #: Opened by a person.
    opened: int = 0
    #: Opened only by a machine (Apple Mail Privacy Protection, a mail gateway on delivery): the
    #: email arrived, but whether anybody read it is not known.
    machine_opened: int = 0
    clicked: int = 0
    responded: int = 0
    reminded: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    expired: int = 0
    #: Never delivered: the survey gave up on them (see ``Summary.failed_by_reason``).
    failed: int = 0

    @classmethod
    def from_counts(cls, invitations_by_step: Mapping[str, int]) -> Funnel:
        """Steps this funnel does not know are left out rather than guessed at."""
        return cls(**{step: invitations_by_step.get(step, 0) for step in FUNNEL_STEPS})

    def as_dict(self) -> dict[str, int]:
        return {step: getattr(self, step) for step in FUNNEL_STEPS}

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(**{step: getattr(self, step) + getattr(other, step) for step in FUNNEL_STEPS})


def _mean(total: int, answers: int) -> float | None:
    return total / answers if answers > 0 else None


@dataclass(frozen=True, slots=True)
class FollowUpAnswers:
    """The optional questions after the score, over the answers that answered each of them: a
    question left blank is not a "no" and not a low rating, so it is left out of its share."""

    recommended_yes: int = 0
    recommended_answers: int = 0
    csat_total: int = 0
    csat_answers: int = 0
    effort_total: int = 0
    effort_answers: int = 0

    @property
    def recommended_share(self) -> float | None:
        """Of those who said whether they recommended us in the last 12 months, the share of yes."""
        return _mean(self.recommended_yes, self.recommended_answers)

    @property
    def average_csat(self) -> float | None:
        return _mean(self.csat_total, self.csat_answers)

    @property
    def average_effort(self) -> float | None:
        return _mean(self.effort_total, self.effort_answers)

    def __add__(self, other: FollowUpAnswers) -> FollowUpAnswers:
        return FollowUpAnswers(
            self.recommended_yes + other.recommended_yes,
            self.recommended_answers + other.recommended_answers,
            self.csat_total + other.csat_total,
            self.csat_answers + other.csat_answers,
            self.effort_total + other.effort_total,
            self.effort_answers + other.effort_answers,
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
    funnel: Funnel = field(default_factory=Funnel)
    #: Invitations given up, by reason code (expired, attempts_exhausted, refused, ...).
    failed_by_reason: Mapping[str, int] = field(default_factory=dict)
    follow_up: FollowUpAnswers = field(default_factory=FollowUpAnswers)

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.scores.responses, self.invitations_sent)

    def __add__(self, other: Summary) -> Summary:
        reasons = dict(self.failed_by_reason)
        for reason, invitations in other.failed_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + invitations
        return Summary(
            scores=self.scores + other.scores,
            invitations_sent=self.invitations_sent + other.invitations_sent,
            cases=self.cases + other.cases,
            funnel=self.funnel + other.funnel,
            failed_by_reason=dict(sorted(reasons.items())),
            follow_up=self.follow_up + other.follow_up,
        )
