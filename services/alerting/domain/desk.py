"""The case desk's rules: what people may do to a case, and what each action means.

Pure: no I/O, ``now`` passed in. The handlers (``services/alerting/handlers/desk.py``) load the
case, ask these rules, and record the outcome on the case's timeline.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from services.alerting.domain.cases import CaseStatus, transition

MAX_NOTE = 10_000
MAX_RESOLUTION = 2_000
MAX_REASON = 2_000


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    MEETING = "meeting"


class Outcome(StrEnum):
    REACHED = "reached"
    LEFT_MESSAGE = "left_message"
    NO_ANSWER = "no_answer"


class Band(StrEnum):
    """Which detractors are the most unhappy: 0-4 are urgent, 5-6 normal."""

    URGENT = "urgent"
    NORMAL = "normal"


def band(score: int) -> Band:
    return Band.URGENT if score <= 4 else Band.NORMAL


#: The scores each band holds, as a list filter asks for them.
BAND_SCORES: Mapping[Band, tuple[int, int]] = {Band.URGENT: (0, 4), Band.NORMAL: (5, 6)}


class InvalidInput(ValueError):
    """What a person typed breaks a rule; ``field`` names the input, the message says how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def checked_text(field: str, text: str | None, *, longest: int) -> str:
    """Text to keep on the timeline: 1 to ``longest`` characters once trimmed, and no NUL byte,
    which Postgres cannot store and no person means."""
    if text is None or not text.strip():
        raise InvalidInput(field, "is required")
    if "\x00" in text:
        raise InvalidInput(field, "contains a NUL character (\\u0000), which text cannot hold")
    trimmed = text.strip()
    if len(trimmed) > longest:
        raise InvalidInput(field, f"is {len(trimmed)} characters long; at most {longest} are kept")
    return trimmed


def checked_note(text: str | None) -> str:
    return checked_text("note", text, longest=MAX_NOTE)


@dataclass(frozen=True, slots=True)
class Resolution:
    status: CaseStatus
    root_cause: str
    text: str


def resolve(
    status: CaseStatus, root_cause: str | None, text: str | None, allowed: Collection[str]
) -> Resolution:
    """Resolving needs a root cause from the tenant's list and a word on what was done: the report
    counts root causes, and the next person to open the case reads what settled it."""
    after = transition(status, CaseStatus.RESOLVED)
    if root_cause is None or root_cause not in allowed:
        raise InvalidInput("root_cause", f"must be one of: {', '.join(allowed)}")
    return Resolution(after, root_cause, checked_text("resolution", text, longest=MAX_RESOLUTION))


def reopen(status: CaseStatus) -> CaseStatus:
    """A resolved case comes back as open: the customer wrote again, or it was closed too soon."""
    return transition(status, CaseStatus.OPEN)


@dataclass(frozen=True, slots=True)
class ContactEffect:
    status: CaseStatus
    #: This contact is the case's first: ``contacted_at`` is set now, and only now.
    first_contact: bool


def log_contact(status: CaseStatus, already_contacted: bool, outcome: Outcome) -> ContactEffect:
    """Every attempt is kept on the timeline, but only reaching the customer counts as contacting
    them: a voicemail or an unanswered call has not won anyone back, so it neither stops the SLA
    clock nor moves an open case on. A contact may be logged in any status (a call after the case
    was resolved is still part of its story); only an open case changes status."""
    reached = outcome is Outcome.REACHED
    first = reached and not already_contacted
    after = CaseStatus.CONTACTED if reached and status is CaseStatus.OPEN else status
    return ContactEffect(after, first)


class Viewer(Protocol):
    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def sees_all(self) -> bool: ...


class Placed(Protocol):
    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def assignee_user_id(self) -> uuid.UUID | None: ...
    @property
    def team_id(self) -> uuid.UUID | None: ...


def visible(person: Viewer, case: Placed, team_ids_of_person: Collection[uuid.UUID]) -> bool:
    """Nobody sees another tenant's cases; an agent sees the cases assigned to them or to one of
    their teams; team leads, CX managers and admins see all of their tenant's."""
    if case.tenant_id != person.tenant_id:
        return False
    if person.sees_all:
        return True
    return case.assignee_user_id == person.user_id or (
        case.team_id is not None and case.team_id in team_ids_of_person
    )


# --- The lists -----------------------------------------------------------------------------------

#: The owner filter's value for cases nobody is assigned to.
UNASSIGNED = "unassigned"


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What a list of cases is narrowed to; ``None`` leaves a dimension open."""

    status: CaseStatus | None = None
    touchpoint: str | None = None
    band: Band | None = None
    #: A user's id, or :data:`UNASSIGNED`.
    assignee: uuid.UUID | str | None = None
    team_id: uuid.UUID | None = None
    breached: bool | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose cases a list may show: everything of the tenant (``None`` fields), or an agent's, or
    one tab: the person's own (``user_id``) and/or their teams' (``team_ids``)."""

    user_id: uuid.UUID | None = None
    team_ids: tuple[uuid.UUID, ...] | None = None

    @property
    def everything(self) -> bool:
        return self.user_id is None and self.team_ids is None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page of a list sorted by due time (then id) starts: after this case."""

    due_at: datetime
    case_id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.due_at.isoformat(), str(self.case_id)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            due, case_id = json.loads(raw)
            cursor = cls(datetime.fromisoformat(due), uuid.UUID(case_id))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise InvalidInput("cursor", "is not a cursor this list gave out") from None
        if cursor.due_at.tzinfo is None:
            raise InvalidInput("cursor", "is not a cursor this list gave out")
        return cursor
