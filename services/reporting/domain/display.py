"""How the report page words a summary's numbers: pure text, so the page and its tests agree.

Anything without a base to speak of (no invitation sent, no answer given) is shown as ``NOTHING``
rather than as 0, which would read as a result.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.reporting.domain.followups import Interval
from services.reporting.domain.summary import FUNNEL_STEPS, Summary

NOTHING = "—"

STEP_LABELS = {
    "sent": "Sent",
    "opened": "Opened",
    "machine_opened": "Opened by a machine only",
    "clicked": "Clicked",
    "responded": "Responded",
    "reminded": "Reminded",
    "bounced": "Bounced",
    "unsubscribed": "Unsubscribed",
    "expired": "Expired",
    "failed": "Failed (never delivered)",
}

#: How the report names why the survey gave an invitation up (``survey.failed.v1`` reasons).
FAILURE_LABELS = {
    "expired": "Expired before it could be sent",
    "attempts_exhausted": "The mail server kept refusing for the time being",
    "refused": "The mail server refused the message",
    "recipient_refused": "The address does not exist",
    "suppressed": "Unsubscribed, bounced or complained since",
    "unbuildable": "The email could not be built",
    "tenant_unknown": "Unknown tenant",
}


def share(part: int, whole: int) -> float | None:
    """``part`` as a share of ``whole`` (0-1); None when the whole is nothing."""
    return part / whole if whole > 0 else None


def percent(value: float | None) -> str:
    """A 0-1 share as "50.0 %"."""
    return NOTHING if value is None else f"{value * 100:.1f} %"


def one_decimal(value: float | None) -> str:
    return NOTHING if value is None else f"{value:.1f}"


def signed_score(nps: float | None) -> str:
    """An NPS with its sign spelled out, so a good or bad score never rests on colour alone."""
    if nps is None:
        return NOTHING
    return f"{nps:+.1f}" if round(nps, 1) != 0 else "0.0"


def count(value: int) -> str:
    return f"{value:,}"


@dataclass(frozen=True, slots=True)
class StepCell:
    label: str
    invitations: str
    share_of_sent: str


@dataclass(frozen=True, slots=True)
class FollowUpCells:
    recommended_share: str
    recommended_of: str
    average_csat: str
    csat_answers: str
    average_effort: str
    effort_answers: str


def funnel_cells(summary: Summary) -> list[StepCell]:
    """Every funnel step with how many invitations reached it and their share of those sent."""
    funnel = summary.funnel.as_dict()
    return [
        StepCell(
            STEP_LABELS[step],
            count(funnel[step]),
            # A failed invitation was never sent: it is no share of those that were.
            NOTHING if step == "failed" else percent(share(funnel[step], funnel["sent"])),
        )
        for step in FUNNEL_STEPS
    ]


def failure_rows(summary: Summary) -> list[tuple[str, str]]:
    """(why, how many) for the invitations the survey gave up, most frequent first."""
    ordered = sorted(summary.failed_by_reason.items(), key=lambda item: (-item[1], item[0]))
    return [(FAILURE_LABELS.get(reason, reason), count(invitations)) for reason, invitations in ordered]


def follow_up_cells(summary: Summary) -> FollowUpCells:
    answers = summary.follow_up
    return FollowUpCells(
        recommended_share=percent(answers.recommended_share),
        recommended_of=f"{count(answers.recommended_yes)} of {count(answers.recommended_answers)}",
        average_csat=one_decimal(answers.average_csat),
        csat_answers=count(answers.csat_answers),
        average_effort=one_decimal(answers.average_effort),
        effort_answers=count(answers.effort_answers),
    )


def hours(value: float | None) -> str:
    """A duration in hours as "3.5 h"."""
    return NOTHING if value is None else f"{value:,.1f} h"


def of(part: int, whole: int) -> str:
    return f"{count(part)} of {count(whole)}"


def percent_range(interval: Interval | None) -> str:
    """A 0-1 interval as "45.0 to 95.0 %"; nothing when there is no base for one."""
    return NOTHING if interval is None else f"{interval.low * 100:.1f} to {interval.high * 100:.1f} %"
