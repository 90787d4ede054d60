"""Follow-up cases as reporting learns of them: from events that may arrive in any order.

``followup.opened`` and ``followup.updated`` travel on different partitions, so an update can
arrive before the case's opening, and an older update after a newer one. Merging facts must give
the same case whatever the order: the latest status wins (ties go to the further status, then to
breached), and whatever only the opening knows (touchpoint, opened_at, due_at, the answer's response_id) is
kept once known.

How the case went (owner, team, times to contact and resolution, root cause, recovery score) is
taken from the latest snapshot that carries it: each field on its own, so an event from an older
emitter, which leaves those fields out, never wipes what a newer one said. The price: a field a
newer snapshot empties (an owner removed) keeps its last value; and should an older-style update be
the newest fact, a late snapshot that is not the newest one with the field may lose to an older
one. Neither matters once every emitter sends the whole state and fields, once set, stay set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")

#: How far along a case is; breaks ties between facts stamped with the same instant.
PROGRESS = {"open": 0, "contacted": 1, "resolved": 2}


@dataclass(frozen=True, slots=True)
class CaseFacts:
    status: str
    breached: bool
    updated_at: datetime
    touchpoint: str | None = None
    opened_at: datetime | None = None
    due_at: datetime | None = None
    priority: str | None = None
    assignee_name: str | None = None
    team_name: str | None = None
    contacted_at: datetime | None = None
    seconds_to_contact: float | None = None
    contact_within_sla: bool | None = None
    resolved_at: datetime | None = None
    seconds_to_resolution: float | None = None
    root_cause: str | None = None
    recovery_score: int | None = None
    #: The answer the case follows up: only the opening says it.
    response_id: uuid.UUID | None = None

    @property
    def precedence(self) -> tuple[datetime, int, bool]:
        return (self.updated_at, PROGRESS[self.status], self.breached)


#: Known once the case is opened: the first value known stays.
FIRST_KNOWN = ("touchpoint", "opened_at", "due_at", "response_id")
#: The case's state as of a snapshot: the latest snapshot's value where it has one.
LATEST_KNOWN = (
    "priority",
    "assignee_name",
    "team_name",
    "contacted_at",
    "seconds_to_contact",
    "contact_within_sla",
    "resolved_at",
    "seconds_to_resolution",
    "root_cause",
    "recovery_score",
)


def merge(stored: CaseFacts, arriving: CaseFacts) -> CaseFacts:
    latest, earlier = (arriving, stored) if arriving.precedence > stored.precedence else (stored, arriving)
    return CaseFacts(
        status=latest.status,
        breached=latest.breached,
        updated_at=latest.updated_at,
        touchpoint=_known(stored.touchpoint, arriving.touchpoint),
        opened_at=_known(stored.opened_at, arriving.opened_at),
        due_at=_known(stored.due_at, arriving.due_at),
        priority=_known(latest.priority, earlier.priority),
        assignee_name=_known(latest.assignee_name, earlier.assignee_name),
        team_name=_known(latest.team_name, earlier.team_name),
        contacted_at=_known(latest.contacted_at, earlier.contacted_at),
        seconds_to_contact=_known(latest.seconds_to_contact, earlier.seconds_to_contact),
        contact_within_sla=_known(latest.contact_within_sla, earlier.contact_within_sla),
        resolved_at=_known(latest.resolved_at, earlier.resolved_at),
        seconds_to_resolution=_known(latest.seconds_to_resolution, earlier.seconds_to_resolution),
        root_cause=_known(latest.root_cause, earlier.root_cause),
        recovery_score=_known(latest.recovery_score, earlier.recovery_score),
        response_id=_known(stored.response_id, arriving.response_id),
    )


def _known(preferred: T | None, fallback: T | None) -> T | None:
    return preferred if preferred is not None else fallback
