"""Answers that change after they were given, and what that does to their follow-up case.

``survey.responded`` announces an answer (revision 1); ``survey.response_updated`` repeats the
whole answer with a higher revision when the respondent adds a comment or follow-up answers, or
replaces the score inside the grace period. Only a higher revision than the one held is applied, so
duplicates and reordering are harmless. A case follows the current score: a detractor gets one, a
corrected mis-click closes it again, and only a case closed that way reopens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.alerting.domain.cases import CaseStatus, is_detractor

#: ``survey.responded`` carries no revision: it is the first.
FIRST_REVISION = 1


class Resolution(StrEnum):
    """Why a case was resolved."""

    #: Somebody followed the customer up and marked the case resolved.
    HANDLED = "handled"
    #: The customer replaced their detractor score with a passive or promoter one.
    SCORE_CHANGED = "score_changed"


class CaseAction(StrEnum):
    NOTHING = "nothing"
    OPEN = "open"
    #: The case stays as it is, showing the answer's current score, comment and follow-up answers.
    REFRESH = "refresh"
    RESOLVE = "resolve"
    REOPEN = "reopen"


def is_newer(held_revision: int | None, arriving_revision: int) -> bool:
    """Whether an arriving version of an answer replaces the one held (if any)."""
    return held_revision is None or arriving_revision > held_revision


def case_action(status: CaseStatus | None, resolution: Resolution | None, score: int) -> CaseAction:
    """What a newer version of an answer, with this current ``score``, does to the answer's case
    (``status`` None: it has none).

    A case somebody resolved stays resolved whatever the score becomes: it was followed up. One the
    customer's own correction closed reopens if they go back to a detractor score.
    """
    detractor = is_detractor(score)
    if status is None:
        return CaseAction.OPEN if detractor else CaseAction.NOTHING
    if status is CaseStatus.RESOLVED:
        if detractor and resolution is Resolution.SCORE_CHANGED:
            return CaseAction.REOPEN
        return CaseAction.REFRESH
    return CaseAction.REFRESH if detractor else CaseAction.RESOLVE


def resolved_note(old_score: int, new_score: int) -> str:
    return (
        f"Resolved automatically: the customer changed their score from {old_score} to {new_score}, "
        "so they are no longer a detractor."
    )


def reopened_note(old_score: int, new_score: int) -> str:
    return (
        f"Reopened: the customer changed their score from {old_score} back to {new_score}, a detractor score."
    )


@dataclass(frozen=True, slots=True)
class CaseState:
    """What a score change may change about a case."""

    status: CaseStatus
    resolution: Resolution | None
    resolved_at: datetime | None
    breached_at: datetime | None
    due_at: datetime
    note: str | None


def resolved_by_score_change(case: CaseState, *, old_score: int, new_score: int, now: datetime) -> CaseState:
    """The case once the customer has changed a detractor score to one that is not: resolved, and
    the note says why. Its due time and any breach stay on record."""
    return replace(
        case,
        status=CaseStatus.RESOLVED,
        resolved_at=now,
        resolution=Resolution.SCORE_CHANGED,
        note=resolved_note(old_score, new_score),
    )


def reopened_by_score_change(
    case: CaseState, *, old_score: int, new_score: int, due_at: datetime
) -> CaseState:
    """The case once the customer has gone back to a detractor score: open again, on a fresh SLA
    clock that runs from when they gave the new score, so an old breach no longer counts."""
    return replace(
        case,
        status=CaseStatus.OPEN,
        resolved_at=None,
        resolution=None,
        breached_at=None,
        due_at=due_at,
        note=reopened_note(old_score, new_score),
    )
