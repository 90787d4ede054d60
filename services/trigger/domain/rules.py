"""Deciding whether an incoming event invites its customer to a survey."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED

#: Each intake event type and the touchpoint it is a survey about.
TOUCHPOINTS: Mapping[str, str] = {
    PURCHASE_COMPLETED: "webshop-purchase",
    TICKET_CLOSED: "support-ticket",
}


class Outcome(StrEnum):
    INVITED = "invited"
    SKIPPED = "skipped"


class Reason(StrEnum):
    REST_PERIOD = "rest_period"
    NO_EMAIL = "no_email"


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the rules need to know about one incoming event."""

    event_id: str
    customer_id: str
    event_type: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    touchpoint: str
    outcome: Outcome
    reason: Reason | None = None
    rest_until: datetime | None = None

    @property
    def invited(self) -> bool:
        return self.outcome is Outcome.INVITED


def rest_period_ends(last_invited_at: datetime | None, rest_period: timedelta) -> datetime | None:
    """When the customer may be asked again; ``None`` if they may be asked now or were never asked."""
    if last_invited_at is None:
        return None
    return last_invited_at + rest_period


def in_rest_period(now: datetime, last_invited_at: datetime | None, rest_period: timedelta) -> bool:
    ends = rest_period_ends(last_invited_at, rest_period)
    return ends is not None and now < ends


def decide(
    candidates: Iterable[Candidate],
    last_invited: Mapping[str, datetime],
    rest_period: timedelta,
    now: datetime,
) -> list[Decision]:
    """Decide a batch in order. A customer invited by an earlier event of the same batch is inside
    the rest period for the later ones, exactly as if the events had come one at a time."""
    invited_at = dict(last_invited)
    decisions = []
    for candidate in candidates:
        touchpoint = TOUCHPOINTS[candidate.event_type]
        previous = invited_at.get(candidate.customer_id)
        if not candidate.email:
            decisions.append(Decision(candidate, touchpoint, Outcome.SKIPPED, Reason.NO_EMAIL))
        elif in_rest_period(now, previous, rest_period):
            decisions.append(
                Decision(
                    candidate,
                    touchpoint,
                    Outcome.SKIPPED,
                    Reason.REST_PERIOD,
                    rest_until=rest_period_ends(previous, rest_period),
                )
            )
        else:
            invited_at[candidate.customer_id] = now
            decisions.append(Decision(candidate, touchpoint, Outcome.INVITED))
    return decisions
