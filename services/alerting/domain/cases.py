"""Follow-up cases: which answers open one, and how a case may move on (the SLA clock is
``services/alerting/domain/sla.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from libs.common.events import NpsCategory, nps_category


class CaseStatus(StrEnum):
    OPEN = "open"
    CONTACTED = "contacted"
    RESOLVED = "resolved"


#: Where a case may go from each status. Forward only, except that a resolved case may be reopened
#: (the desk's own action, ``domain/desk.py``): it is open again, its history kept.
TRANSITIONS: Mapping[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.CONTACTED, CaseStatus.RESOLVED}),
    CaseStatus.CONTACTED: frozenset({CaseStatus.RESOLVED}),
    CaseStatus.RESOLVED: frozenset({CaseStatus.OPEN}),
}


def is_detractor(score: int) -> bool:
    """A detractor's answer opens a case; the groups are :func:`libs.common.events.nps_category`."""
    try:
        return nps_category(score) is NpsCategory.DETRACTOR
    except ValueError:
        raise ValueError(f"an NPS score is 0-10, not {score}") from None


class InvalidTransition(Exception):
    def __init__(self, current: CaseStatus, target: CaseStatus) -> None:
        allowed = ", ".join(
            f"{status.value} (by reopening it)" if status is CaseStatus.OPEN else status.value
            for status in sorted(TRANSITIONS[current])
        )
        super().__init__(
            f"a case cannot go from {current.value} to {target.value}; from {current.value} it may go to "
            f"{allowed}"
        )
        self.current = current
        self.target = target


def transition(current: CaseStatus, target: CaseStatus) -> CaseStatus:
    """The status after a requested change, or :class:`InvalidTransition` naming the problem."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target
