"""The funnel's daily rollup (``reporting.funnel_days``): which of a range's counts come from it and
which from the raw facts, and how a batch of new facts changes it.

The rollup counts invitations per tenant, touchpoint, UTC day and step. A range given in whole
UTC days is read from it alone; a ``since`` or ``until`` inside a day leaves a partial day at
either end, and only those (at most two days' worth) are counted from the raw facts, whose
indexes are tenant + time. Everything here is pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

#: A person's open, and an open only a machine made: the rollup counts a machine's open only while
#: no person opened the same invitation (as the funnel always has), on the machine open's day.
OPENED = "opened"
MACHINE_OPENED = "machine_opened"
#: The rollup's step of an invitation given up, one row per reason (``reason`` is '' for the others).
FAILED_BY_REASON = "failed_by_reason"


@dataclass(frozen=True, slots=True)
class WholeDays:
    """UTC days from ``first`` (inclusive) to ``stop`` (exclusive); None: no bound on that side."""

    first: date | None
    stop: date | None


@dataclass(frozen=True, slots=True)
class Edge:
    """A stretch inside at most two adjacent UTC days, counted from the raw facts; ``until`` is
    None only for a ``since`` on the last day a date can have."""

    since: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class DayPlan:
    """How a range splits: whole days from the rollup (None when none), and partial edges."""

    days: WholeDays | None
    edges: tuple[Edge, ...] = ()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _day_after(moment: datetime) -> date | None:
    """The first UTC day starting at or after ``moment``; None after the last day there is."""
    day = moment.astimezone(UTC).date()
    if _midnight(day) == moment:
        return day
    return None if day == date.max else day + timedelta(days=1)


def plan_funnel_days(since: datetime | None, until: datetime | None) -> DayPlan:
    """Split [since, until) (None: unbounded) into the whole UTC days it holds and the partial
    days at its ends. Where it holds no whole day, one edge is the whole range (under 48 hours)."""
    if since is not None and until is not None and since >= until:
        return DayPlan(None)
    first = None if since is None else _day_after(since)
    stop = None if until is None else until.astimezone(UTC).date()
    if since is not None and (first is None or (stop is not None and first >= stop)):
        return DayPlan(None, (Edge(since, until),))
    edges = []
    if since is not None and first is not None and _midnight(first) != since:
        edges.append(Edge(since, _midnight(first)))
    if until is not None and stop is not None and _midnight(stop) != until:
        edges.append(Edge(_midnight(stop), until))
    return DayPlan(WholeDays(first, stop), tuple(edges))


def utc_day(moment: datetime) -> date:
    """The UTC day a fact is counted on."""
    return moment.astimezone(UTC).date()


#: A rollup row's key: (tenant, touchpoint, day, step, reason).
RollupKey = tuple[uuid.UUID, str, date, str, str]
InvitationKey = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True, slots=True)
class NewStep:
    """A step fact the batch's insert actually added (not a repeat of a stored one)."""

    tenant_id: uuid.UUID
    invitation_id: uuid.UUID
    touchpoint: str
    step: str
    at: datetime


def rollup_changes(
    sent: Iterable[tuple[uuid.UUID, str, datetime]],
    steps: Sequence[NewStep],
    failures: Iterable[tuple[uuid.UUID, str, str, datetime]],
    opens: Mapping[InvitationKey, Mapping[str, tuple[str, datetime]]],
) -> dict[RollupKey, int]:
    """What a batch's new facts add to the rollup, per row (rows whose change is 0 left out).

    ``sent``: (tenant, touchpoint, sent_at) of new invitations; ``failures``: (tenant, touchpoint,
    reason, at) of new failures; ``opens``: per (tenant, invitation) among the new steps' opens,
    the invitation's stored ``opened`` / ``machine_opened`` facts (touchpoint, at) as they are
    after the batch's insert. A new machine open counts unless a person's open is stored; a new
    person's open takes back the count of a machine open stored before (one that is not new)."""
    changes: dict[RollupKey, int] = {}

    def add(key: RollupKey, delta: int) -> None:
        changes[key] = changes.get(key, 0) + delta

    for tenant_id, touchpoint, at in sent:
        add((tenant_id, touchpoint, utc_day(at), "sent", ""), 1)
    for tenant_id, touchpoint, reason, at in failures:
        add((tenant_id, touchpoint, utc_day(at), FAILED_BY_REASON, reason), 1)
    new_machine = {(s.tenant_id, s.invitation_id) for s in steps if s.step == MACHINE_OPENED}
    for step in steps:
        invitation = (step.tenant_id, step.invitation_id)
        stored = opens.get(invitation, {})
        if step.step != MACHINE_OPENED or OPENED not in stored:
            add((step.tenant_id, step.touchpoint, utc_day(step.at), step.step, ""), 1)
        machine = stored.get(MACHINE_OPENED)
        if step.step == OPENED and machine is not None and invitation not in new_machine:
            add((step.tenant_id, machine[0], utc_day(machine[1]), MACHINE_OPENED, ""), -1)
    return {key: delta for key, delta in changes.items() if delta != 0}


@dataclass
class FunnelCounts:
    """One touchpoint's funnel over a range: invitations per step (``sent`` among them), and the
    invitations given up per reason."""

    steps: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)

    def add_step(self, step: str, invitations: int) -> None:
        self.steps[step] = self.steps.get(step, 0) + invitations

    def add_failures(self, reason: str, invitations: int) -> None:
        self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + invitations

    def without_zeros(self) -> FunnelCounts:
        return FunnelCounts(
            {step: n for step, n in self.steps.items() if n},
            {reason: n for reason, n in sorted(self.failed_by_reason.items()) if n},
        )

    @property
    def empty(self) -> bool:
        return not any(self.steps.values()) and not any(self.failed_by_reason.values())
