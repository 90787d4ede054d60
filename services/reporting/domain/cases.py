"""Follow-up cases as reporting learns of them: from events that may arrive in any order.

``followup.opened`` and ``followup.updated`` travel on different partitions, so an update can
arrive before the case's opening, and an older update after a newer one. Merging facts must give
the same case whatever the order: the latest status wins (ties go to the further status, then to
breached), and whatever only the opening knows (touchpoint, opened_at, due_at) is kept once known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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

    @property
    def precedence(self) -> tuple[datetime, int, bool]:
        return (self.updated_at, PROGRESS[self.status], self.breached)


def merge(stored: CaseFacts, arriving: CaseFacts) -> CaseFacts:
    latest = arriving if arriving.precedence > stored.precedence else stored
    return CaseFacts(
        status=latest.status,
        breached=latest.breached,
        updated_at=latest.updated_at,
        touchpoint=stored.touchpoint if stored.touchpoint is not None else arriving.touchpoint,
        opened_at=stored.opened_at if stored.opened_at is not None else arriving.opened_at,
        due_at=stored.due_at if stored.due_at is not None else arriving.due_at,
    )
