"""What the case desk's queries return (``AlertingRepository``'s ``# The case desk`` block)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from services.alerting.models import Answer, CaseEvent, FollowupCase


@dataclass(frozen=True, slots=True)
class DeskRow:
    """A case with the names of the person and the team it is assigned to."""

    case: FollowupCase
    assignee_name: str | None
    team_name: str | None


@dataclass(frozen=True, slots=True)
class DeskPage:
    rows: Sequence[DeskRow]
    #: Another page follows: it starts after the last row.
    more: bool


@dataclass(frozen=True, slots=True)
class CaseDetail:
    row: DeskRow
    #: Oldest first, as it happened.
    timeline: Sequence[CaseEvent]
    #: The customer's other answers and cases, newest first.
    earlier_answers: Sequence[Answer]
    earlier_cases: Sequence[FollowupCase]


@dataclass(frozen=True, slots=True)
class Choice:
    """A user or team a case may be assigned to."""

    id: uuid.UUID
    name: str
